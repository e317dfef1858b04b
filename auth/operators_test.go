package auth

import (
	"errors"
	"testing"

	"outbound/internal/testutil"
	"outbound/store"
)

func newOperators(t *testing.T) *Operators {
	t.Helper()
	db := testutil.OpenDB(t)
	users, err := NewStore(store.Bolt(db))
	if err != nil {
		t.Fatal(err)
	}
	users.SetHashCost(4)
	ops, err := NewOperators(store.Bolt(db), users)
	if err != nil {
		t.Fatal(err)
	}
	return ops
}

func TestOperatorAddVerifyDelete(t *testing.T) {
	ops := newOperators(t)
	if _, err := ops.Add("admin", "correct horse"); err != nil {
		t.Fatal(err)
	}
	if _, err := ops.Add("admin", "another one"); !errors.Is(err, ErrOperatorExists) {
		t.Errorf("adding admin twice: %v, want ErrOperatorExists", err)
	}
	if op, err := ops.Verify("admin", "correct horse"); err != nil || op.Name != "admin" {
		t.Errorf("Verify(right password) = %v, %v", op, err)
	}
	if _, err := ops.Verify("admin", "wrong horse"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("Verify(wrong password) = %v, want ErrBadCredentials", err)
	}
	if _, err := ops.Verify("nobody", "correct horse"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("Verify(unknown) = %v, want ErrBadCredentials", err)
	}
	if op, err := ops.Get("admin"); err != nil || op.Name != "admin" || len(op.PasswordHash) == 0 {
		t.Errorf("Get(admin) = %+v, %v", op, err)
	}
	if _, err := ops.Get("nobody"); !errors.Is(err, ErrNoSuchOperator) {
		t.Errorf("Get(nobody) = %v, want ErrNoSuchOperator", err)
	}
	if ok, _ := ops.Exists("admin"); !ok {
		t.Error("Exists(admin) = false")
	}
	list, err := ops.List()
	if err != nil || len(list) != 1 || list[0].Name != "admin" {
		t.Errorf("List = %v, %v", list, err)
	}
	if err := ops.Delete("admin"); err != nil {
		t.Fatal(err)
	}
	if err := ops.Delete("admin"); !errors.Is(err, ErrNoSuchOperator) {
		t.Errorf("deleting twice: %v, want ErrNoSuchOperator", err)
	}
	if _, err := ops.Verify("admin", "correct horse"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("Verify after delete = %v, want ErrBadCredentials", err)
	}
}

func TestOperatorRefusesBadNameAndShortPassword(t *testing.T) {
	ops := newOperators(t)
	if _, err := ops.Add("with space", "long enough"); err == nil || err.Error() != `operator name "with space" must not contain spaces or control characters` {
		t.Errorf("bad name: %v", err)
	}
	if _, err := ops.Add("admin", "short"); err == nil {
		t.Error("short password accepted")
	}
}

// An operator is not an SMTP login: the users' store does not know it.
func TestOperatorIsNotAUser(t *testing.T) {
	db := testutil.OpenDB(t)
	users, _ := NewStore(store.Bolt(db))
	users.SetHashCost(4)
	ops, _ := NewOperators(store.Bolt(db), users)
	if _, err := ops.Add("admin", "correct horse"); err != nil {
		t.Fatal(err)
	}
	if _, err := users.Verify("admin", "correct horse"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("users.Verify(operator) = %v, want ErrBadCredentials", err)
	}
}
