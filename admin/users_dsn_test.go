package admin_test

import (
	"testing"

	"outbound/internal/admintest"
)

func TestUpdateUserTurnsNotificationsOffAndOn(t *testing.T) {
	r := admintest.New(t)
	call(t, r, "POST", "/api/users", `{"name":"alice@example.com","password":"correct horse"}`, token)
	if code, obj, raw := call(t, r, "GET", "/api/users/alice@example.com", "", token); code != 200 || obj["dsn"] != true {
		t.Fatalf("a new user must get notifications: %d %s", code, raw)
	}

	code, obj, raw := call(t, r, "PATCH", "/api/users/alice@example.com", `{"dsn":false}`, token)
	if code != 200 || obj["dsn"] != false {
		t.Fatalf("dsn off: %d %s", code, raw)
	}
	if u, _ := r.Users.Get("alice@example.com"); !u.DSNOff {
		t.Fatalf("dsn off not stored: %+v", u)
	}

	// Other fields leave it as it is.
	call(t, r, "PATCH", "/api/users/alice@example.com", `{"display_name":"Alice"}`, token)
	if u, _ := r.Users.Get("alice@example.com"); !u.DSNOff {
		t.Fatal("an update of another field turned notifications back on")
	}

	code, obj, raw = call(t, r, "PATCH", "/api/users/alice@example.com", `{"dsn":true}`, token)
	if u, _ := r.Users.Get("alice@example.com"); code != 200 || obj["dsn"] != true || u.DSNOff {
		t.Fatalf("dsn on: %d %s", code, raw)
	}
	if code, _, raw := call(t, r, "PATCH", "/api/users/alice@example.com", `{"dsn":"off"}`, token); code != 400 {
		t.Fatalf(`"dsn":"off" must be refused, it is true or false: %d %s`, code, raw)
	}
}
