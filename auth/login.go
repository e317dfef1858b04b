package auth

import (
	"errors"

	"github.com/emersion/go-sasl"
)

// LoginAuthenticator checks a user name and password given through the
// LOGIN mechanism.
type LoginAuthenticator func(username, password string) error

// loginServer implements the server side of the obsolete but widespread
// LOGIN SASL mechanism (draft-murchison-sasl-login), which go-sasl no longer
// ships. Outlook and many older clients and libraries offer only LOGIN.
//
// The exchange: the server sends "Username:", the client answers with its
// user name, the server sends "Password:", the client answers with the
// password. A client may send the user name as an initial response.
type loginServer struct {
	authenticate LoginAuthenticator
	username     string
	step         int
}

// NewLoginServer returns a sasl.Server for the LOGIN mechanism.
func NewLoginServer(authenticate LoginAuthenticator) sasl.Server {
	return &loginServer{authenticate: authenticate}
}

var errLoginUnexpected = errors.New("unexpected LOGIN response")

func (s *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch s.step {
	case 0:
		s.step = 1
		if response == nil {
			return []byte("Username:"), false, nil
		}
		// Initial response carries the user name.
		s.username = string(response)
		s.step = 2
		return []byte("Password:"), false, nil
	case 1:
		s.username = string(response)
		s.step = 2
		return []byte("Password:"), false, nil
	case 2:
		s.step = 3
		return nil, true, s.authenticate(s.username, string(response))
	default:
		return nil, true, errLoginUnexpected
	}
}
