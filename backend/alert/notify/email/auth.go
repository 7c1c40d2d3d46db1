package email

import (
	"errors"
	"net"
	"net/smtp"
)

// errInsecureAuth refuses to send a password over a plain connection to
// another machine (net/smtp's PlainAuth rule, kept for LOGIN too).
var errInsecureAuth = errors.New("refusing to send a password without TLS")

func secure(server *smtp.ServerInfo, host string) error {
	if server.TLS || isLoopback(host) {
		return nil
	}
	return errInsecureAuth
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// plainAuth is AUTH PLAIN (RFC 4616) with the initial response.
type plainAuth struct{ user, pass, host string }

func (a plainAuth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	if err := secure(server, a.host); err != nil {
		return "", nil, err
	}
	return "PLAIN", []byte("\x00" + a.user + "\x00" + a.pass), nil
}

func (a plainAuth) Next(_ []byte, more bool) ([]byte, error) {
	if more {
		return nil, errors.New("unexpected server challenge after AUTH PLAIN")
	}
	return nil, nil
}

// loginAuth is the old AUTH LOGIN that some providers (Exchange, older
// relays) still require: the server asks for the user name, then the
// password, each base64-encoded by net/smtp.
type loginAuth struct {
	user, pass, host string
	step             int
}

func (a *loginAuth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	if err := secure(server, a.host); err != nil {
		return "", nil, err
	}
	a.step = 0
	return "LOGIN", nil, nil
}

func (a *loginAuth) Next(_ []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	a.step++
	switch a.step {
	case 1:
		return []byte(a.user), nil
	case 2:
		return []byte(a.pass), nil
	}
	return nil, errors.New("unexpected server challenge after AUTH LOGIN")
}
