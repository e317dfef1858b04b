// Package web is the server-rendered interface for operators and senders,
// served on the admin listener at `/` next to the admin API.
//
// Operators (accounts made with `outbound operator add`) see and change
// everything; a sender signs in with its SMTP login and sees only its own
// settings, usage and messages. The pages hold no business rules: every
// read and change goes through the admin API's handler, called in process
// with the typed admin.Client, so a refusal on a page is the API's own
// message. For a sender the API is called with the Outbound-Acting-Sender
// header, and the web layer never addresses another user.
//
// Shape (after Miniflux): one small file per page or action, named
// noun_verb (login_check.go, message_retry.go); routes.go lists them all;
// templates/layout.html plus one templates/views/NAME.html per page; one
// hand-written static/style.css and a little static/app.js, no inline
// script or style, so the Content-Security-Policy can forbid both. Every
// page and form works without JavaScript; htmx (static/htmx.min.js,
// htmx.org 2.0.11 from the npm registry, licence 0BSD) only enhances.
package web

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"outbound/auth"
)

// Operators checks operators' sign-ins (auth.Operators), and looks the
// operator of a session up on each request: a removed operator, or one
// whose password changed, is signed out.
type Operators interface {
	Exists(name string) (bool, error)
	Verify(name, password string) (*auth.Operator, error)
	Get(name string) (*auth.Operator, error)
}

// Users checks senders' sign-ins: their SMTP login and password
// (auth.Store), and looks the sender of a session up on each request, as
// Operators does.
type Users interface {
	Verify(name, password string) (*auth.User, error)
	Get(name string) (*auth.User, error)
}

// Throttle slows password guessing on the sign-in page as on SMTP AUTH,
// with failures charged to the client's source (see auth.Throttle).
type Throttle interface {
	SourceRefused(source string) (time.Duration, bool)
	LoginRefused(source, login string) (time.Duration, bool)
	WaitForLogin(login string) time.Duration
	Fail(source, login string) (sourceLocked, loginLocked bool)
}

var _ Throttle = (*auth.Throttle)(nil)

// Options configures the web interface.
type Options struct {
	// API is the admin API's handler (admin.Handler) and Token its bearer
	// token: every page reads and acts through it, in process.
	API   http.Handler
	Token string
	// Operators and Users check sign-ins.
	Operators Operators
	Users     Users
	// Throttle limits failed sign-ins; nil: none (tests only).
	Throttle Throttle
	// Sessions keeps the sessions; nil: in memory, with Lifetimes.
	Sessions SessionStore
	// Lifetimes bound sessions kept in memory; zero fields mean 30
	// minutes idle and 12 hours in all.
	Lifetimes Lifetimes
	// Secure marks the session cookie Secure even when the request did
	// not arrive over TLS here (behind a TLS-terminating proxy).
	Secure bool
	// AppleProfile is the Apple configuration profile (.mobileconfig) of
	// a user (package autoconfig), offered on its E-mail settings page;
	// nil: not offered.
	AppleProfile func(login string) ([]byte, error)
	// AllowPrivateHosts is web.allow_private_hosts, as the API has it: a
	// sender may then give its own SMTP server on this machine, so its
	// form offers Secure connection None (ownSMTPFields).
	AllowPrivateHosts bool
	// Now is the clock; nil: time.Now. Tests move it to expire sessions.
	Now    func() time.Time
	Logger *slog.Logger
}

// handler holds what every page needs; its methods are the pages.
type handler struct {
	Options
	views views
}

// Handler returns the web interface. It parses every template once, now,
// so a broken template stops the relay at start rather than on a page.
func Handler(opts Options) (http.Handler, error) {
	if opts.API == nil || opts.Operators == nil || opts.Users == nil {
		return nil, errors.New("web: API, Operators and Users are required")
	}
	if opts.Lifetimes.Idle == 0 {
		opts.Lifetimes.Idle = 30 * time.Minute
	}
	if opts.Lifetimes.Max == 0 {
		opts.Lifetimes.Max = 12 * time.Hour
	}
	if opts.Sessions == nil {
		opts.Sessions = NewMemorySessions(opts.Lifetimes)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	v, err := parseViews()
	if err != nil {
		return nil, err
	}
	h := &handler{Options: opts, views: v}
	return securityHeaders(h.routes()), nil
}
