package delivery

import (
	"errors"

	"outbound/bounce"
	"outbound/capture"
	"outbound/queue"
	"outbound/route"
)

// Capturer keeps the messages of the capture upstream (package capture).
type Capturer interface {
	// Put stores m durably before it returns.
	Put(m *capture.Message) error
}

var _ Capturer = (*capture.Bolt)(nil)

// sendCapture is the transaction of the capture upstream: the message, as
// it would have been sent, goes into the capture store and every recipient
// is delivered. A store that cannot write fails the attempt temporarily,
// so the message is attempted again: nothing acknowledged is lost.
func (d *Deliverer) sendCapture(m *queue.Message, body []byte, rcpts []string) outcome {
	if d.opts.Capture == nil {
		return failed(errors.New("the capture route is configured but no capture store is"), bounce.Setup)
	}
	err := d.opts.Capture.Put(&capture.Message{ID: m.ID, User: m.User, From: m.From, To: rcpts,
		Captured: d.opts.Now(), Body: body})
	if err != nil {
		return failed(err, bounce.Setup)
	}
	results := make(map[string]result, len(rcpts))
	for _, r := range rcpts {
		results[r] = result{reply: "250 2.0.0 captured, not sent (" + route.CaptureHost + ")"}
	}
	return outcome{results: results}
}
