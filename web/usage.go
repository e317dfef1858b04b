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
// only SVG presentation attributes and classes.
type Chart struct {
	// Width and Height are the SVG's viewBox; Base the y of the axis.
	Width, Height, Base int
	Bars              []ChartBar
	// Max is the count of the tallest hour (at least 1), labelled on
	// the axis.
	Max int
	// Total is the recipients of the 24 hours.
	Total int
}

// ChartBar is one hour.
type ChartBar struct {
	X, Y, W, H int
	Count      int
	// Ends is the end of the hour it counts.
	Ends time.Time
	// Label is the hour printed under every sixth bar, "" otherwise.
	Label string
}

// Chart geometry, in SVG user units.
const (
	chartWidth  = 480
	chartHeight = 140
	chartTop    = 14 // room for the maximum's label
	chartBase   = 118
	chartBarGap = 4
)

// newChart lays out hourly (the last 24 hours, oldest first, the last one
// ending at now) as bars scaled to the busiest hour.
func newChart(hourly []int, now time.Time) Chart {
	c := Chart{Width: chartWidth, Height: chartHeight, Base: chartBase, Max: 1}
	for _, n := range hourly {
		c.Max = max(c.Max, n)
		c.Total += n
	}
	if len(hourly) == 0 {
		return c
	}
	slot := chartWidth / len(hourly)
	for i, n := range hourly {
		h := n * (chartBase - chartTop) / c.Max
		if n > 0 {
			h = max(h, 2) // an hour with mail never looks empty
		}
		ends := now.Add(-time.Duration(len(hourly)-1-i) * time.Hour)
		b := ChartBar{X: i*slot + chartBarGap/2, Y: chartBase - h, W: slot - chartBarGap, H: h, Count: n, Ends: ends}
		if (len(hourly)-1-i)%6 == 0 {
			b.Label = ends.UTC().Format("15:04")
		}
		c.Bars = append(c.Bars, b)
	}
	return c
}
