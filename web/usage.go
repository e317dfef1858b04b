package web

import (
	"time"

	"outbound/admin"
)

// Usage is a user's sending against its limits, as the usage partial
// draws it: two bars and the 24-hour chart.
type Usage struct {
	*admin.UsageView
	Chart Chart
}

// newUsage prepares u for the usage partial, at now.
func newUsage(u *admin.UsageView, now time.Time) Usage {
	return Usage{UsageView: u, Chart: newChart(u.Hourly, now)}
}

// Chart is the geometry of the 24-hour bar chart, drawn as inline SVG on
// the server: no script, and no style attribute (the CSP forbids them),
// only SVG presentation attributes and classes. The SVG stretches to the
// page's width (its text would not), so the hour labels are HTML below it.
type Chart struct {
	// Width and Height are the SVG's viewBox.
	Width, Height int
	Bars          []ChartBar
	// Labels name the hours under the chart, every six hours, oldest
	// first.
	Labels []string
	// Max is the count of the busiest hour; Total of the 24 hours.
	Max, Total int
}

// ChartBar is one hour.
type ChartBar struct {
	X, Y, W, H int
	Count      int
	// Ends is the end of the hour it counts.
	Ends time.Time
}

// Chart geometry, in SVG user units.
const (
	chartWidth  = 480
	chartHeight = 120
	chartBarGap = 4
)

// newChart lays out hourly (the last 24 hours, oldest first, the last one
// ending at now) as bars scaled to the busiest hour.
func newChart(hourly []int, now time.Time) Chart {
	c := Chart{Width: chartWidth, Height: chartHeight}
	for _, n := range hourly {
		c.Max = max(c.Max, n)
		c.Total += n
	}
	if len(hourly) == 0 {
		return c
	}
	slot := chartWidth / len(hourly)
	for i, n := range hourly {
		h := n * chartHeight / max(c.Max, 1)
		if n > 0 {
			h = max(h, 2) // an hour with mail never looks empty
		}
		ago := len(hourly) - 1 - i
		ends := now.Add(-time.Duration(ago) * time.Hour)
		c.Bars = append(c.Bars, ChartBar{X: i*slot + chartBarGap/2, Y: chartHeight - h, W: slot - chartBarGap, H: h, Count: n, Ends: ends})
		if ago%6 == 5 || ago == 0 {
			c.Labels = append(c.Labels, ends.UTC().Format("15:04"))
		}
	}
	return c
}
