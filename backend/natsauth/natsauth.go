// Package natsauth is the NATS auth callout that lets a NATS cluster admit
// MQTT clients by Semko's own accounts: the fleet's devices (salted SHA-256
// secrets that nats-server's config users cannot check) and the configured
// backend and observer accounts. nats-server sends each CONNECT of a
// client that is not one of its auth_users to $SYS.REQ.USER.AUTH as a
// signed JWT; the Service answers with a user JWT carrying the account's
// permissions, or a refusal, signed by the callout issuer's account key.
//
// The credentials are read at every CONNECT from the live set the backend
// keeps in step with the registry, so devices added, rotated or retired are
// admitted or refused from their next connection without a restart.
//
// The rules are the embedded broker's (see broker.Credentials):
//   - the secret must verify against the stored hash;
//   - the MQTT client id must belong to the account (a device's client id
//     is its device id), so nobody can take over another device's session;
//   - a device publishes only its upstream kinds and subscribes only to its
//     downstream kinds and the time beacon; an observer subscribes only to
//     alert notices; a backend account may use all of protocol.Root.
//
// MQTT topic levels become NATS subject tokens ('/' -> '.'), so a device id
// containing '.' would span two tokens: such devices are refused with a
// clear reason (ErrDottedID) instead of being given a wrong ACL.
//
// Several backend replicas may serve the callout: they subscribe in one
// queue group and nats-server takes the first answer.
package natsauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/semko/semko/broker"
	"github.com/semko/semko/protocol"
)

// Subject is where nats-server sends authorization requests.
const Subject = "$SYS.REQ.USER.AUTH"

// queueGroup lets several replicas share the requests.
const queueGroup = "semko-auth-callout"

// Account is the NATS account admitted clients are placed in: the global
// account of a server configured without accounts, where the MQTT streams
// and the backend's own user live.
const Account = "$G"

// Errors. Refusals carry one of these as the reason nats-server logs.
var (
	ErrOptions    = errors.New("natsauth: invalid options")
	ErrUnknown    = errors.New("unknown account")
	ErrSecret     = errors.New("wrong secret")
	ErrClientID   = errors.New("client id does not belong to the account")
	ErrNotMQTT    = errors.New("devices connect over MQTT only")
	ErrDottedID   = errors.New("device id contains '.', which NATS would split into two subject tokens")
	ErrBadRequest = errors.New("malformed authorization request")
)

// Lookup is what the Service needs of the credential set;
// *broker.Credentials fits.
type Lookup interface {
	Lookup(username string) (broker.Credential, bool)
	Owner(clientID string) (broker.Credential, bool)
}

// Options configures a Service. Issuer and Credentials are required; Run
// needs Conn.
type Options struct {
	// Conn is a connection as one of the server's auth_users (they bypass
	// the callout), in the account the callout requests are sent to.
	Conn *nats.Conn
	// Issuer is the account key pair whose public key is the server's
	// auth_callout issuer; it signs every answer.
	Issuer nkeys.KeyPair
	// Credentials is read at every request.
	Credentials Lookup
	Logger      *slog.Logger
	Registerer  prometheus.Registerer
}

// Service answers nats-server's authorization requests.
type Service struct {
	opts    Options
	results *prometheus.CounterVec
}

// New checks opts.
func New(opts Options) (*Service, error) {
	switch {
	case opts.Issuer == nil:
		return nil, fmt.Errorf("%w: Issuer is required", ErrOptions)
	case opts.Credentials == nil:
		return nil, fmt.Errorf("%w: Credentials are required", ErrOptions)
	}
	if pub, err := opts.Issuer.PublicKey(); err != nil || !nkeys.IsValidPublicAccountKey(pub) {
		return nil, fmt.Errorf("%w: Issuer must be an account key pair (seed \"SA...\")", ErrOptions)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{opts: opts, results: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "semko_natsauth_requests_total",
		Help: "Authorization requests answered for the NATS cluster, by result (ok or the refusal's reason).",
	}, []string{"result"})}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(s.results); err != nil {
			return nil, fmt.Errorf("natsauth metrics: %w", err)
		}
	}
	return s, nil
}

// Run serves requests until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	if s.opts.Conn == nil {
		return fmt.Errorf("%w: Run needs Conn", ErrOptions)
	}
	sub, err := s.opts.Conn.QueueSubscribe(Subject, queueGroup, func(m *nats.Msg) {
		if err := m.Respond(s.Answer(m.Data)); err != nil {
			s.opts.Logger.Warn("natsauth: answer not sent", "err", err)
		}
	})
	if err != nil {
		return fmt.Errorf("natsauth: subscribe %s: %w", Subject, err)
	}
	<-ctx.Done()
	if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("natsauth: unsubscribe: %w", err)
	}
	return nil
}

// Answer turns one request (a JWT from nats-server) into the signed
// response. It never returns nil: a request it cannot read gets an empty
// answer, which nats-server treats as a refusal.
func (s *Service) Answer(request []byte) []byte {
	req, err := jwt.DecodeAuthorizationRequestClaims(string(request))
	if err != nil {
		s.results.WithLabelValues("bad_request").Inc()
		s.opts.Logger.Warn("natsauth: unreadable request", "err", err)
		return []byte{}
	}
	resp := jwt.NewAuthorizationResponseClaims(req.UserNkey)
	resp.Audience = req.Server.ID
	user, err := s.authorize(req)
	if err == nil {
		resp.Jwt, err = user.Encode(s.opts.Issuer)
	}
	if err != nil {
		s.results.WithLabelValues(reason(err)).Inc()
		s.opts.Logger.Info("natsauth: connection refused", "username", clip(req.ConnectOptions.Username),
			"client_id", clip(req.ClientInformation.MQTT), "host", req.ClientInformation.Host, "err", err)
		resp.Jwt, resp.Error = "", err.Error()
	} else {
		s.results.WithLabelValues("ok").Inc()
	}
	out, err := resp.Encode(s.opts.Issuer)
	if err != nil {
		s.opts.Logger.Error("natsauth: sign answer", "err", err)
		return []byte{}
	}
	return []byte(out)
}

// authorize applies the rules to one request and returns the user's claims.
func (s *Service) authorize(req *jwt.AuthorizationRequestClaims) (*jwt.UserClaims, error) {
	if req.UserNkey == "" || req.Server.ID == "" {
		return nil, ErrBadRequest
	}
	username, secret := req.ConnectOptions.Username, req.ConnectOptions.Password
	cred, ok := s.opts.Credentials.Lookup(username)
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknown, clip(username))
	}
	if !broker.VerifySecret(cred.Hash, secret) {
		return nil, fmt.Errorf("%w for %q", ErrSecret, username)
	}
	clientID := req.ClientInformation.MQTT
	if cred.Role == broker.RoleDevice && clientID == "" {
		return nil, fmt.Errorf("%w (%q)", ErrNotMQTT, username)
	}
	if clientID != "" {
		if owner, ok := s.opts.Credentials.Owner(clientID); !ok || owner.Username != username {
			return nil, fmt.Errorf("%w: %q is not %q's", ErrClientID, clip(clientID), username)
		}
	}
	uc := jwt.NewUserClaims(req.UserNkey)
	uc.Audience = Account
	uc.Name = username
	root := subject(protocol.Root)
	switch cred.Role {
	case broker.RoleDevice:
		if strings.Contains(username, ".") {
			return nil, fmt.Errorf("%w: %q", ErrDottedID, username)
		}
		for _, k := range protocol.Kinds() {
			t := subject(protocol.DeviceTopic(username, k))
			if k.Upstream() {
				uc.Pub.Allow.Add(t)
			}
			if k.Downstream() {
				uc.Sub.Allow.Add(t)
			}
		}
		uc.Sub.Allow.Add(subject(protocol.TimeTopic))
	case broker.RoleObserver:
		// An MQTT "a/#" is two NATS subscriptions, "a" and "a.>".
		uc.Sub.Allow.Add(root+".alerts", root+".alerts.>")
	case broker.RoleBackend:
		uc.Pub.Allow.Add(root, root+".>")
		uc.Sub.Allow.Add(root, root+".>")
	default:
		return nil, fmt.Errorf("%w: role %v", ErrUnknown, cred.Role)
	}
	// A short-lived grant would disconnect every device each time it ran
	// out; the registry is consulted again at the next CONNECT instead.
	uc.IssuedAt = time.Now().Unix()
	return uc, nil
}

// subject maps an MQTT topic to the NATS subject nats-server uses for it.
func subject(topic string) string { return strings.ReplaceAll(topic, "/", ".") }

// reason is the metric label of a refusal.
func reason(err error) string {
	for _, e := range []struct {
		err   error
		label string
	}{{ErrUnknown, "unknown"}, {ErrSecret, "secret"}, {ErrClientID, "client_id"},
		{ErrNotMQTT, "not_mqtt"}, {ErrDottedID, "dotted_id"}, {ErrBadRequest, "bad_request"}} {
		if errors.Is(err, e.err) {
			return e.label
		}
	}
	return "error"
}

// clip bounds what a client sent before it goes into a log line.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
