package bounce_test

import (
	"fmt"
	"strings"
	"testing"

	"outbound/bounce"
)

// The accuracy the classifier must keep on the corpus (testdata/replies.tsv):
// the share of replies whose class (retry or give up) is right, and the share
// whose category is right. A wrong class costs the most: a sender waits days
// for an answer that was final, or mail that would have gone through bounces.
const (
	minClassAccuracy    = 0.97
	minCategoryAccuracy = 0.90
	minCorpusRows       = 400
)

// TestCorpusScore scores Classify on every reply of the corpus and fails when
// either accuracy falls under its floor. Run it with -v to see the confusion
// tables and every miss, so a change to the rules shows its whole effect:
//
//	go test -count=1 -v -run TestCorpusScore ./bounce/
func TestCorpusScore(t *testing.T) {
	rows := readCorpus(t)
	if len(rows) < minCorpusRows {
		t.Errorf("the corpus has %d replies; keep at least %d", len(rows), minCorpusRows)
	}
	s := scoreCorpus(rows)
	t.Logf("\n%s", s.report())
	classAcc := float64(s.classRight) / float64(s.total)
	catAcc := float64(s.categoryRight) / float64(s.total)
	t.Logf("class right: %d of %d (%.1f%%); category right: %d of %d (%.1f%%)",
		s.classRight, s.total, 100*classAcc, s.categoryRight, s.total, 100*catAcc)
	if classAcc < minClassAccuracy {
		t.Errorf("class accuracy %.1f%%, want at least %.0f%%", 100*classAcc, 100*minClassAccuracy)
	}
	if catAcc < minCategoryAccuracy {
		t.Errorf("category accuracy %.1f%%, want at least %.0f%%", 100*catAcc, 100*minCategoryAccuracy)
	}
}

// score is the outcome of classifying a corpus.
type score struct {
	total, classRight, categoryRight int
	// class[want][got] and category[want][got] count the replies.
	class    map[string]map[string]int
	category map[bounce.Category]map[bounce.Category]int
	misses   []string
}

func scoreCorpus(rows []corpusRow) score {
	s := score{class: map[string]map[string]int{}, category: map[bounce.Category]map[bounce.Category]int{}}
	for _, row := range rows {
		v := bounce.Classify(row.code, row.enhanced, row.text)
		s.total++
		got := v.Class.String()
		if s.class[row.class] == nil {
			s.class[row.class] = map[string]int{}
		}
		s.class[row.class][got]++
		if s.category[row.category] == nil {
			s.category[row.category] = map[bounce.Category]int{}
		}
		s.category[row.category][v.Category]++
		if got == row.class {
			s.classRight++
		}
		if v.Category == row.category {
			s.categoryRight++
		}
		if got != row.class || v.Category != row.category {
			s.misses = append(s.misses, fmt.Sprintf("replies.tsv:%d (%s): %d %s %q\n\tgot  %s %s (%s)\n\twant %s %s",
				row.line, row.source, row.code, row.enhanced, row.text, got, v.Category, v.Explanation, row.class, row.category))
		}
	}
	return s
}

// report prints the confusion tables, rows the expected value and columns
// the classifier's, then the misses.
func (s score) report() string {
	var b strings.Builder
	classes := []string{"temporary", "permanent"}
	fmt.Fprintf(&b, "class (rows: want, columns: got)\n%-12s", "")
	for _, c := range classes {
		fmt.Fprintf(&b, "%10s", c)
	}
	b.WriteString("\n")
	for _, w := range classes {
		fmt.Fprintf(&b, "%-12s", w)
		for _, g := range classes {
			fmt.Fprintf(&b, "%10d", s.class[w][g])
		}
		b.WriteString("\n")
	}

	cats := []bounce.Category{
		bounce.Network, bounce.TLS, bounce.UpstreamAuth, bounce.RateLimited, bounce.Greylisted,
		bounce.MailboxFull, bounce.Blocklisted, bounce.UnknownUser, bounce.UnknownDomain, bounce.Policy,
		bounce.SpamContent, bounce.MessageTooLarge, bounce.Other,
	}
	// Short column heads, in the order of cats.
	heads := []string{"net", "tls", "auth", "rate", "grey", "full", "block", "user", "domain", "policy", "spam", "size", "other"}
	fmt.Fprintf(&b, "\ncategory (rows: want, columns: got)\n%-18s", "")
	for _, h := range heads {
		fmt.Fprintf(&b, "%7s", h)
	}
	fmt.Fprintf(&b, "%8s\n", "right")
	for _, w := range cats {
		fmt.Fprintf(&b, "%-18s", w)
		n := 0
		for _, g := range cats {
			n += s.category[w][g]
			if s.category[w][g] == 0 {
				fmt.Fprintf(&b, "%7s", ".")
				continue
			}
			fmt.Fprintf(&b, "%7d", s.category[w][g])
		}
		fmt.Fprintf(&b, "%5d/%d\n", s.category[w][w], n)
	}
	if len(s.misses) > 0 {
		fmt.Fprintf(&b, "\n%d misses:\n", len(s.misses))
		for _, m := range s.misses {
			b.WriteString(m + "\n")
		}
	}
	return b.String()
}
