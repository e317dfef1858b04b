package admin_test

import (
	"testing"
	"time"

	"outbound/admin"
	"outbound/internal/admintest"
)

func TestTLSStatusIsServedToOperators(t *testing.T) {
	exp := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
	r := admintest.NewWith(t, func(o *admin.Options) {
		o.TLS = func() admin.TLSStatus {
			return admin.TLSStatus{Source: "acme", Names: []string{"relay.test"}, Issuer: "Pebble Intermediate", NotAfter: exp, LastError: "rate limited"}
		}
	})
	st, err := r.Client.TLS()
	if err != nil {
		t.Fatal(err)
	}
	if st.Source != "acme" || len(st.Names) != 1 || st.Names[0] != "relay.test" || st.Issuer != "Pebble Intermediate" || !st.NotAfter.Equal(exp) || st.LastError != "rate limited" {
		t.Errorf("got %+v", st)
	}
	if code, _ := r.Call(t, "GET", "/api/tls", "", nil); code != 401 {
		t.Errorf("without the token: %d, want 401", code)
	}
}

func TestTLSStatusWithoutASourceIs501(t *testing.T) {
	r := admintest.New(t)
	if _, err := r.Client.TLS(); statusOf(err) != 501 {
		t.Errorf("got %v, want 501", err)
	}
}
