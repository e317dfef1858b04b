package web

import (
	"strings"
	"testing"
	"time"

	"outbound/admin"
)

func TestChartScalesToTheBusiestHour(t *testing.T) {
	hourly := make([]int, 24)
	hourly[0], hourly[12], hourly[23] = 1, 4, 2
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	c := newChart(hourly, now)
	if len(c.Bars) != 24 || c.Max != 4 || c.Total != 7 {
		t.Fatalf("chart: %d bars, max %d, total %d", len(c.Bars), c.Max, c.Total)
	}
	if b := c.Bars[12]; b.H != c.Height || b.Y != 0 {
		t.Errorf("the busiest hour: %+v, want the full height", b)
	}
	if b := c.Bars[23]; b.H != c.Height/2 || !b.Ends.Equal(now) {
		t.Errorf("the last hour: %+v, want half height, ending now", b)
	}
	if b := c.Bars[5]; b.H != 0 {
		t.Errorf("an empty hour: %+v, want no bar", b)
	}
	if got := strings.Join(c.Labels, " "); got != "11:00 17:00 23:00 05:00 10:00" {
		t.Errorf("labels %q", got)
	}
}

// The chart is SVG without style attributes, and the bars are classes
// per 10 % step, so the page works under the CSP.
func TestUsagePartialRendersBarsAndChart(t *testing.T) {
	v, err := parseViews()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	u := newUsage(&admin.UsageView{SentLastHour: 45, PerHour: 50, SentLastDay: 45, PerDay: 500, RemainingHour: 5, RemainingDay: 455,
		Hourly: make([]int, 24)}, time.Now())
	if err := v["overview"].ExecuteTemplate(&b, "usage", u); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`class="bar bar-9"`, `class="bar bar-1"`, "45 <span class=\"of\">of 50</span>", "5 remaining", `<svg class="chart"`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("usage partial lacks %s:\n%s", want, b.String())
		}
	}
	if styleAttr.MatchString(b.String()) {
		t.Error("usage partial has a style attribute")
	}
}
