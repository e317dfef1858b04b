package queue

import (
	"container/heap"
	"time"
)

// timetable is a min-heap of message IDs ordered by due time, with an index
// so an entry can be moved or removed in O(log n). Not safe for concurrent
// use; Queue guards it.
type timetable struct {
	items []*slot
	index map[string]*slot
}

type slot struct {
	id   string
	when time.Time
	pos  int
}

func (t *timetable) set(id string, when time.Time) {
	if t.index == nil {
		t.index = make(map[string]*slot)
	}
	if s, ok := t.index[id]; ok {
		s.when = when
		heap.Fix((*slotHeap)(t), s.pos)
		return
	}
	s := &slot{id: id, when: when}
	t.index[id] = s
	heap.Push((*slotHeap)(t), s)
}

func (t *timetable) remove(id string) {
	if s, ok := t.index[id]; ok {
		heap.Remove((*slotHeap)(t), s.pos)
		delete(t.index, id)
	}
}

func (t *timetable) has(id string) bool { _, ok := t.index[id]; return ok }

func (t *timetable) len() int { return len(t.items) }

func (t *timetable) earliest() (string, time.Time, bool) {
	if len(t.items) == 0 {
		return "", time.Time{}, false
	}
	return t.items[0].id, t.items[0].when, true
}

// slotHeap adapts timetable to container/heap.
type slotHeap timetable

func (h *slotHeap) Len() int           { return len(h.items) }
func (h *slotHeap) Less(i, j int) bool { return h.items[i].when.Before(h.items[j].when) }
func (h *slotHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].pos = i
	h.items[j].pos = j
}
func (h *slotHeap) Push(x any) {
	s := x.(*slot)
	s.pos = len(h.items)
	h.items = append(h.items, s)
}
func (h *slotHeap) Pop() any {
	s := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return s
}
