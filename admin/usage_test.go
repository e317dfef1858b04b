package admin_test

import (
	"testing"

	"outbound/internal/admintest"
	"outbound/quota"
)

// Usage carries the day hour by hour, for the chart of the user's page;
// the hours add up to the windows.
func TestUsageHasTheDayHourByHour(t *testing.T) {
	r := admintest.New(t)
	r.AddUsers(t, alice)
	if _, err := r.Quota.Hold(alice, quota.Limits{PerHour: 10, PerDay: 10}, 2); err != nil {
		t.Fatal(err)
	}
	u, err := r.Client.UserUsage(alice)
	if err != nil || len(u.Hourly) != 24 || u.Hourly[23] != 2 || u.SentLastHour != 2 {
		t.Fatalf("usage: %+v %v", u, err)
	}
	d, err := r.Client.User(alice)
	if err != nil || len(d.Usage.Hourly) != 24 || d.Usage.Hourly[23] != 2 {
		t.Fatalf("user detail's usage: %+v %v", d.Usage, err)
	}
}
