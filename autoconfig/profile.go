package autoconfig

import (
	"bytes"
	"crypto/sha256"
	"encoding/xml"
	"fmt"
	"net/http"
	"strings"

	"outbound/auth"
)

// An Apple configuration profile is a property list whose PayloadContent
// holds one com.apple.mail.managed payload: the mail account. Apple marks
// the incoming server as required (EmailAccountType,
// IncomingMailServerHostName and IncomingMailServerAuthentication), so
// the profile names Options.IMAPHost, or the relay's own host name. The
// profile is not signed: the device shows it as "Unsigned", and the user
// confirms it; it holds no password, the device asks for it.

// plistEntry is one key of a dict and its value: string, int or bool.
type plistEntry struct {
	key   string
	value any
}

// Profile is the .mobileconfig for user u. Its identifiers are derived
// from the host name and the login, so downloading it again and
// installing it replaces the earlier one instead of adding a second
// account.
func (o Options) Profile(u *auth.User) []byte {
	imap := o.imapHost()
	reverse := reverseHost(o.Hostname)
	desc := "Outgoing mail via " + o.Hostname
	mail := []plistEntry{
		{"PayloadType", "com.apple.mail.managed"},
		{"PayloadVersion", 1},
		{"PayloadIdentifier", reverse + ".outbound.mail." + u.Name},
		{"PayloadUUID", uuidOf(o.Hostname, u.Name, "mail")},
		{"PayloadDisplayName", desc},
		{"EmailAccountDescription", desc},
		{"EmailAccountType", "EmailTypeIMAP"},
	}
	if u.DisplayName != "" {
		mail = append(mail, plistEntry{"EmailAccountName", u.DisplayName})
	}
	if strings.Contains(u.Name, "@") {
		mail = append(mail, plistEntry{"EmailAddress", u.Name})
	}
	mail = append(mail,
		plistEntry{"IncomingMailServerHostName", imap},
		plistEntry{"IncomingMailServerPortNumber", 993},
		plistEntry{"IncomingMailServerUseSSL", true},
		plistEntry{"IncomingMailServerAuthentication", "EmailAuthPassword"},
		plistEntry{"IncomingMailServerUsername", u.Name},
		plistEntry{"OutgoingMailServerHostName", o.Hostname},
		plistEntry{"OutgoingMailServerPortNumber", o.implicitPort()},
		plistEntry{"OutgoingMailServerUseSSL", true},
		plistEntry{"OutgoingMailServerAuthentication", "EmailAuthPassword"},
		plistEntry{"OutgoingMailServerUsername", u.Name},
		// With the placeholder incoming server the one password there is
		// the relay's: Mail asks for it once. A real IMAP server has its own.
		plistEntry{"OutgoingPasswordSameAsIncomingPassword", o.IMAPHost == ""},
	)
	var b bytes.Buffer
	b.WriteString(xml.Header)
	b.WriteString(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n")
	b.WriteString("<plist version=\"1.0\">\n<dict>\n<key>PayloadContent</key>\n<array>\n")
	writeDict(&b, mail)
	b.WriteString("</array>\n")
	writeEntries(&b, []plistEntry{
		{"PayloadType", "Configuration"},
		{"PayloadVersion", 1},
		{"PayloadIdentifier", reverse + ".outbound." + u.Name},
		{"PayloadUUID", uuidOf(o.Hostname, u.Name, "profile")},
		{"PayloadDisplayName", desc + " (" + u.Name + ")"},
		{"PayloadDescription", "Sets up " + o.Hostname + " as the outgoing mail server for " + u.Name + ". Mail asks for the password."},
	})
	b.WriteString("</dict>\n</plist>\n")
	return b.Bytes()
}

// ServeProfile answers with u's profile as a download.
func ServeProfile(w http.ResponseWriter, o Options, u *auth.User) {
	w.Header().Set("Content-Type", "application/x-apple-aspen-config")
	name := strings.NewReplacer("@", "_at_", "/", "_", `"`, "_", "\\", "_").Replace(u.Name)
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.mobileconfig"`, name))
	w.Write(o.Profile(u))
}

func writeDict(b *bytes.Buffer, entries []plistEntry) {
	b.WriteString("<dict>\n")
	writeEntries(b, entries)
	b.WriteString("</dict>\n")
}

func writeEntries(b *bytes.Buffer, entries []plistEntry) {
	for _, e := range entries {
		b.WriteString("<key>")
		xml.EscapeText(b, []byte(e.key))
		b.WriteString("</key>")
		switch v := e.value.(type) {
		case string:
			b.WriteString("<string>")
			xml.EscapeText(b, []byte(v))
			b.WriteString("</string>")
		case int:
			fmt.Fprintf(b, "<integer>%d</integer>", v)
		case bool:
			if v {
				b.WriteString("<true/>")
			} else {
				b.WriteString("<false/>")
			}
		}
		b.WriteString("\n")
	}
}

// reverseHost is "com.example.mail" for "mail.example.com", the
// reverse-DNS style Apple asks of payload identifiers.
func reverseHost(host string) string {
	parts := strings.Split(strings.TrimSuffix(host, "."), ".")
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return strings.Join(parts, ".")
}

// uuidOf is a stable UUID (version 5 layout over SHA-256) for the parts.
func uuidOf(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	sum[6] = sum[6]&0x0f | 0x50
	sum[8] = sum[8]&0x3f | 0x80
	return fmt.Sprintf("%X-%X-%X-%X-%X", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16])
}
