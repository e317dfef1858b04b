// Package autoconfig answers mail clients' automatic configuration for the
// domains the relay's users send from, so that a person types an e-mail
// address and the client fills in the outgoing server by itself:
// Thunderbird's autoconfig (the Mozilla ISPDB clientConfig format),
// Microsoft Outlook's POX autodiscover, and an Apple configuration profile
// (.mobileconfig) per user.
//
// Only domains some user may send from (users' login domains and their
// allowed-from domains) are answered; any other domain gets 404, so the
// listener does not confirm or configure domains the relay knows nothing
// about. Everything describes the submission listeners only: the relay
// holds no mailboxes.
package autoconfig

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"outbound/auth"
)

// Users lists the relay's users (auth.Store), to know which domains they
// send from. Listed on every request: autoconfig requests are rare, and a
// user added a moment ago is answered at once.
type Users interface {
	List() ([]*auth.User, error)
}

var _ Users = (*auth.Store)(nil)

// Options configures the handler.
type Options struct {
	// Hostname is the relay's host name, the outgoing server clients are
	// told to use; its certificate must be valid for it.
	Hostname string
	// ImplicitTLSPort and STARTTLSPort are the submission listeners'
	// public ports; 0 means 465 and 587.
	ImplicitTLSPort int
	STARTTLSPort    int
	// IMAPHost is the incoming server the Apple profile and Thunderbird's
	// clientConfig name: both require one in every mail account. "" means Hostname, where
	// nothing answers IMAP: the account then sends, and reports that it
	// cannot fetch mail (docs/autoconfig.md).
	IMAPHost string
	Users    Users
	// Tokens verifies the profile links `outbound autoconfig link` prints;
	// nil: GET /autoconfig/profile.mobileconfig answers 404.
	Tokens *Tokens
	Logger *slog.Logger
}

func (o Options) implicitPort() int {
	if o.ImplicitTLSPort == 0 {
		return 465
	}
	return o.ImplicitTLSPort
}

func (o Options) imapHost() string {
	if o.IMAPHost == "" {
		return o.Hostname
	}
	return o.IMAPHost
}

func (o Options) starttlsPort() int {
	if o.STARTTLSPort == 0 {
		return 587
	}
	return o.STARTTLSPort
}

// Paths are the paths Handler answers, for a mux that puts it beside
// other handlers (the admin listener).
var Paths = []string{
	"/.well-known/autoconfig/mail/config-v1.1.xml",
	"/mail/config-v1.1.xml",
	"/autodiscover/autodiscover.xml",
	"/Autodiscover/Autodiscover.xml",
	ProfilePath,
}

// ProfilePath is where a token link downloads a user's profile.
const ProfilePath = "/autoconfig/profile.mobileconfig"

type handler struct{ Options }

// Handler answers the autoconfig paths (Paths).
func Handler(opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{opts}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/autoconfig/mail/config-v1.1.xml", h.thunderbird)
	mux.HandleFunc("GET /mail/config-v1.1.xml", h.thunderbird)
	// Outlook spells the path with capitals; other clients in lower case.
	mux.HandleFunc("POST /autodiscover/autodiscover.xml", h.autodiscover)
	mux.HandleFunc("POST /Autodiscover/Autodiscover.xml", h.autodiscover)
	mux.HandleFunc("GET "+ProfilePath, h.profileByToken)
	return mux
}

// errUnknownDomain is a domain no user sends from: 404.
var errUnknownDomain = errors.New("no user of this relay sends from that domain")

// domainOf is the lowercase domain of an address, "" when it has none.
func domainOf(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(strings.TrimSuffix(addr[i+1:], "."))
}

// SenderDomains are the domains u may send from: its login's, then those
// of its allowed senders ("bob@example.com" or "example.com"), each once,
// lowercase.
func SenderDomains(u *auth.User) []string {
	var out []string
	seen := map[string]bool{}
	add := func(d string) {
		d = strings.ToLower(strings.TrimSuffix(d, "."))
		if d != "" && !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	add(domainOf(u.Name))
	for _, s := range u.AllowFrom {
		if strings.Contains(s, "@") {
			add(domainOf(s))
		} else {
			add(s)
		}
	}
	return out
}

// known reports whether some user may send from domain.
func (h *handler) known(domain string) (bool, error) {
	if domain == "" {
		return false, nil
	}
	users, err := h.Users.List()
	if err != nil {
		return false, err
	}
	for _, u := range users {
		for _, d := range SenderDomains(u) {
			if d == domain {
				return true, nil
			}
		}
	}
	return false, nil
}

// requestDomain is the domain a Thunderbird request asks about: the
// emailaddress parameter's, or else the host's after "autoconfig." (a
// client that asks autoconfig.example.com without an address).
func requestDomain(r *http.Request) string {
	if d := domainOf(r.URL.Query().Get("emailaddress")); d != "" {
		return d
	}
	host := r.Host
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		host = host[:i]
	}
	if d, ok := strings.CutPrefix(strings.ToLower(host), "autoconfig."); ok {
		return d
	}
	return ""
}

// check answers 404 or 500 and returns false unless domain is known.
func (h *handler) check(w http.ResponseWriter, domain string) bool {
	ok, err := h.known(domain)
	if err != nil {
		h.Logger.Error("autoconfig: listing users", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return false
	}
	if !ok {
		http.Error(w, errUnknownDomain.Error(), http.StatusNotFound)
		return false
	}
	return true
}

// ClientConfig is Thunderbird's clientConfig document, version 1.1 (the
// Mozilla ISPDB format), with the outgoing servers only.
type ClientConfig struct {
	XMLName  xml.Name      `xml:"clientConfig"`
	Version  string        `xml:"version,attr"`
	Provider EmailProvider `xml:"emailProvider"`
}

// EmailProvider is the clientConfig's one provider: the domain asked for.
type EmailProvider struct {
	ID               string   `xml:"id,attr"`
	Domain           string   `xml:"domain"`
	DisplayName      string   `xml:"displayName"`
	DisplayShortName string   `xml:"displayShortName"`
	Incoming         []Server `xml:"incomingServer"`
	Outgoing         []Server `xml:"outgoingServer"`
}

// Server is one outgoingServer: SocketType "SSL" (implicit TLS) or
// "STARTTLS"; Username "%EMAILADDRESS%", which the client replaces.
type Server struct {
	Type           string `xml:"type,attr"`
	Hostname       string `xml:"hostname"`
	Port           int    `xml:"port"`
	SocketType     string `xml:"socketType"`
	Authentication string `xml:"authentication"`
	Username       string `xml:"username"`
}

func (h *handler) thunderbird(w http.ResponseWriter, r *http.Request) {
	domain := requestDomain(r)
	if !h.check(w, domain) {
		return
	}
	server := func(typ, host string, port int, socket string) Server {
		return Server{Type: typ, Hostname: host, Port: port, SocketType: socket,
			Authentication: "password-cleartext", Username: "%EMAILADDRESS%"}
	}
	cc := ClientConfig{Version: "1.1", Provider: EmailProvider{ID: domain, Domain: domain,
		DisplayName: domain + " via " + h.Hostname, DisplayShortName: domain,
		// Implicit TLS first: RFC 8314 prefers it, and clients take the first.
		Incoming: []Server{server("imap", h.imapHost(), 993, "SSL")},
		Outgoing: []Server{server("smtp", h.Hostname, h.implicitPort(), "SSL"),
			server("smtp", h.Hostname, h.starttlsPort(), "STARTTLS")}}}
	writeXML(w, "application/xml", cc)
}

// autodiscoverRequest is Outlook's POX request; only the address is read.
type autodiscoverRequest struct {
	Request struct {
		EMailAddress string `xml:"EMailAddress"`
	} `xml:"Request"`
}

// AutodiscoverResponse is Outlook's POX answer
// (responseschema/2006 with an outlook/responseschema/2006a Response).
type AutodiscoverResponse struct {
	XMLName  xml.Name            `xml:"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006 Autodiscover"`
	Response AutodiscoverOutlook `xml:"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a Response"`
}

// AutodiscoverOutlook is the Response element: one e-mail account.
type AutodiscoverOutlook struct {
	Account struct {
		AccountType string     `xml:"AccountType"`
		Action      string     `xml:"Action"`
		Protocol    []Protocol `xml:"Protocol"`
	} `xml:"Account"`
}

// Protocol is one server of the account. SSL "on" with Encryption "SSL"
// is implicit TLS; Encryption "TLS" would be STARTTLS.
type Protocol struct {
	Type         string `xml:"Type"`
	Server       string `xml:"Server"`
	Port         int    `xml:"Port"`
	LoginName    string `xml:"LoginName"`
	DomainReq    string `xml:"DomainRequired"`
	SPA          string `xml:"SPA"`
	SSL          string `xml:"SSL"`
	Encryption   string `xml:"Encryption"`
	AuthRequired string `xml:"AuthRequired"`
}

func (h *handler) autodiscover(w http.ResponseWriter, r *http.Request) {
	var req autodiscoverRequest
	if err := xml.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
		http.Error(w, "the body is not an autodiscover request: "+err.Error(), http.StatusBadRequest)
		return
	}
	addr := strings.TrimSpace(req.Request.EMailAddress)
	if !h.check(w, domainOf(addr)) {
		return
	}
	var resp AutodiscoverResponse
	acc := &resp.Response.Account
	acc.AccountType, acc.Action = "email", "settings"
	// Outlook takes one SMTP server: implicit TLS on 465.
	acc.Protocol = []Protocol{{Type: "SMTP", Server: h.Hostname, Port: h.implicitPort(), LoginName: addr,
		DomainReq: "off", SPA: "off", SSL: "on", Encryption: "SSL", AuthRequired: "on"}}
	writeXML(w, "application/xml", resp)
}

func writeXML(w http.ResponseWriter, contentType string, v any) {
	out, err := xml.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType+"; charset=utf-8")
	io.WriteString(w, xml.Header)
	w.Write(out)
	io.WriteString(w, "\n")
}

// profileByToken serves the profile of the user a token link names.
func (h *handler) profileByToken(w http.ResponseWriter, r *http.Request) {
	if h.Tokens == nil {
		http.NotFound(w, r)
		return
	}
	login, err := h.Tokens.Verify(r.URL.Query().Get("token"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	users, err := h.Users.List()
	if err != nil {
		h.Logger.Error("autoconfig: listing users", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	for _, u := range users {
		if u.Name == login {
			ServeProfile(w, h.Options, u)
			return
		}
	}
	http.Error(w, fmt.Sprintf("user %q no longer exists", login), http.StatusNotFound)
}
