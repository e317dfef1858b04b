package relay

import (
	"testing"

	"github.com/emersion/go-sasl"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"outbound/metrics"
)

func TestSubmissionsAndAuthFailuresAreCounted(t *testing.T) {
	h := startRelay(t, nil)
	queued := promtest.ToFloat64(metrics.Submissions.WithLabelValues("queued"))
	refused := promtest.ToFloat64(metrics.Submissions.WithLabelValues("refused"))
	authFailed := promtest.ToFloat64(metrics.AuthFailures.WithLabelValues("bad_credentials"))

	c := h.login(t, true)
	if err := send(c, alice, []string{"bob@example.net"}, simpleMessage); err != nil {
		t.Fatal(err)
	}
	send(c, alice, []string{"bob@example.net"}, "From: ceo@bank.example\r\n\r\nx\r\n")
	h.dial(t, true).Auth(sasl.NewPlainClient("", alice, "wrong"))

	if d := promtest.ToFloat64(metrics.Submissions.WithLabelValues("queued")) - queued; d != 1 {
		t.Errorf("queued submissions grew by %v, want 1", d)
	}
	if d := promtest.ToFloat64(metrics.Submissions.WithLabelValues("refused")) - refused; d != 1 {
		t.Errorf("refused submissions grew by %v, want 1", d)
	}
	if d := promtest.ToFloat64(metrics.AuthFailures.WithLabelValues("bad_credentials")) - authFailed; d != 1 {
		t.Errorf("auth failures grew by %v, want 1", d)
	}
}
