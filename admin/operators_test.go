package admin

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"outbound/auth"
	"outbound/internal/testutil"
	"outbound/store"
)

// operatorsClient is a Client of an API with an operators store, reached
// in process.
func operatorsClient(t *testing.T) (*Client, *auth.Operators) {
	t.Helper()
	db := testutil.OpenDB(t)
	users, err := auth.NewStore(store.Bolt(db))
	if err != nil {
		t.Fatal(err)
	}
	users.SetHashCost(4)
	ops, err := auth.NewOperators(store.Bolt(db), users)
	if err != nil {
		t.Fatal(err)
	}
	h := Handler(Options{Users: users, Operators: ops, Token: "tok"})
	return NewClient("http://outbound.invalid", "tok", InProcess(h)), ops
}

func TestOperatorsAddListDelete(t *testing.T) {
	c, ops := operatorsClient(t)
	op, err := c.AddOperator(OperatorRequest{Name: "admin", Password: "operator password"})
	if err != nil || op.Name != "admin" || op.Created.IsZero() {
		t.Fatalf("AddOperator = %+v, %v", op, err)
	}
	if _, err := ops.Verify("admin", "operator password"); err != nil {
		t.Errorf("the stored operator does not verify: %v", err)
	}
	var apiErr *Error
	if _, err := c.AddOperator(OperatorRequest{Name: "admin", Password: "operator password"}); !errors.As(err, &apiErr) || apiErr.Status != http.StatusConflict {
		t.Errorf("adding admin twice: %v, want 409", err)
	}
	if _, err := c.AddOperator(OperatorRequest{Name: "bob", Password: "short"}); !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest ||
		!strings.Contains(err.Error(), "at least 8 characters") {
		t.Errorf("a short password: %v, want 400 saying why", err)
	}
	list, err := c.Operators()
	if err != nil || len(list) != 1 || list[0].Name != "admin" {
		t.Errorf("Operators = %+v, %v", list, err)
	}
	if err := c.DeleteOperator("admin"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteOperator("admin"); !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
		t.Errorf("deleting twice: %v, want 404", err)
	}
}

func TestOperatorsNeedTheToken(t *testing.T) {
	db := testutil.OpenDB(t)
	users, _ := auth.NewStore(store.Bolt(db))
	ops, _ := auth.NewOperators(store.Bolt(db), users)
	c := NewClient("http://outbound.invalid", "wrong", InProcess(Handler(Options{Users: users, Operators: ops, Token: "tok"})))
	var apiErr *Error
	if _, err := c.Operators(); !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized {
		t.Errorf("wrong token: %v, want 401", err)
	}
}

// The answer of an in-process request is the handler's, headers included,
// and the request the caller made is left as it was.
func TestInProcessCarriesRequestAndAnswer(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen", r.Header.Get("Authorization")+" "+r.URL.Path+" "+r.PathValue("x"))
		w.WriteHeader(http.StatusTeapot)
		w.Write([]byte("body"))
	})
	req, _ := http.NewRequest("GET", "http://outbound.invalid/api/thing?q=1", nil)
	req.Header.Set("Authorization", "Bearer t")
	resp, err := InProcess(h).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot || resp.Header.Get("X-Seen") != "Bearer t /api/thing " {
		t.Errorf("answer %d %q", resp.StatusCode, resp.Header.Get("X-Seen"))
	}
}
