package relay

import (
	"errors"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"outbound/auth"
)

// downUsers is a user store that cannot be read (a cluster node past
// [store] cache_max_stale with its database down).
type downUsers struct{}

var errStoreDown = errors.New("the shared store (PostgreSQL) cannot be reached")

func (downUsers) Verify(string, string) (*auth.User, error) { return nil, errStoreDown }
func (downUsers) Get(string) (*auth.User, error)            { return nil, errStoreDown }

// TestAuthWhenUsersCannotBeRead: AUTH answers RFC 4954's temporary
// authentication failure, 454 4.7.0, not a refusal of the credentials
// and not a word about a message not stored.
func TestAuthWhenUsersCannotBeRead(t *testing.T) {
	h := startRelay(t, func(o *Options) { o.Users = downUsers{} })
	c := h.dial(t, false)
	err := c.Auth(sasl.NewPlainClient("", alice, alicePw))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 454 || se.EnhancedCode != (smtp.EnhancedCode{4, 7, 0}) {
		t.Fatalf("AUTH with the user store down: %v, want 454 4.7.0", err)
	}
}
