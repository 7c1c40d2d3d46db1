package mailintake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/incident"
)

// Defaults.
const (
	DefaultMaxMessage        = 15 << 20
	DefaultPerAddressPerHour = 20
	// maxSenders bounds the rate table: past it, senders whose hour is
	// over are forgotten, and if all are recent new ones wait (451).
	maxSenders = 10_000
)

// Principal is who registers e-mailed incidents: an integrator account
// scoped by the intake address's organisation.
const Principal = "email-intake"

// Options configures a Server.
type Options struct {
	Config     incident.EmailConfig
	Desk       *incident.Desk
	Clock      clockwork.Clock
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Server is the intake's SMTP listener.
type Server struct {
	opts  Options
	cfg   incident.EmailConfig
	desk  *incident.Desk
	clock clockwork.Clock
	log   *slog.Logger
	srv   *smtp.Server
	msgs  *prometheus.CounterVec

	mu      sync.Mutex
	senders map[string]*window
	ln      net.Listener
}

type window struct {
	start time.Time
	n     int
}

// New checks the configuration and returns a Server; Run listens.
func New(o Options) (*Server, error) {
	c := o.Config
	if c.MaxMessage <= 0 {
		c.MaxMessage = DefaultMaxMessage
	}
	if c.PerAddressPerHour <= 0 {
		c.PerAddressPerHour = DefaultPerAddressPerHour
	}
	if c.Domain == "" {
		c.Domain = "semko.local"
	}
	if len(c.Addresses) == 0 {
		return nil, errors.New("incidents email: no addresses")
	}
	for _, a := range c.Addresses {
		if !strings.Contains(a.Address, "@") || a.Org == "" {
			return nil, fmt.Errorf("incidents email: address %q needs an address and an org", a.Address)
		}
		if _, ok := o.Desk.Config().Department(a.Department); !ok {
			return nil, fmt.Errorf("incidents email: address %q: unknown department %q", a.Address, a.Department)
		}
	}
	if o.Clock == nil {
		o.Clock = clockwork.NewRealClock()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: o, cfg: c, desk: o.Desk, clock: o.Clock, log: o.Logger, senders: map[string]*window{},
		msgs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "semko_incident_mail_total",
			Help: "Messages to the incident intake, by result (accepted, unknown_address, rate, too_large, malformed, refused, failed)."}, []string{"result"})}
	if o.Registerer != nil {
		if err := o.Registerer.Register(s.msgs); err != nil {
			return nil, fmt.Errorf("incident mail metrics: %w", err)
		}
	}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{s: s}, nil }))
	s.srv.Domain = c.Domain
	// go-smtp's own limit cuts an abusive stream (it stops reading, so
	// the sender sees the connection break); below it, Data reads up to
	// MaxMessage and lets go-smtp drain the rest, so an ordinary sender of
	// a too-large message gets a clean 552.
	s.srv.MaxMessageBytes = 4 * c.MaxMessage
	s.srv.MaxRecipients = 10
	s.srv.ReadTimeout, s.srv.WriteTimeout = time.Minute, time.Minute
	s.srv.ErrorLog = slogPrinter{o.Logger}
	return s, nil
}

// Listen binds the address (so tests and the backend know it before Run).
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("incident mail listen: %w", err)
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	return nil
}

// Addr is the bound address ("" before Listen).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Run serves until ctx ends (listening first if Listen was not called).
func (s *Server) Run(ctx context.Context) error {
	if s.Addr() == "" {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		s.srv.Close()
		ln.Close()
		<-errc
		return nil
	case err := <-errc:
		if errors.Is(err, smtp.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("incident mail: %w", err)
	}
}

// route is where a recipient's incidents belong.
type route struct {
	incident.EmailAddress
}

// resolve finds the intake address for a recipient: exactly, or its
// plus-address ("cs+mall@shop.example" is site mall of cs@shop.example's
// organisation).
func (s *Server) resolve(to string) (route, bool) {
	to = strings.ToLower(strings.TrimSpace(to))
	for _, a := range s.cfg.Addresses {
		if strings.EqualFold(a.Address, to) && a.Site != "" {
			return route{a}, true
		}
	}
	local, domain, ok := strings.Cut(to, "@")
	if !ok {
		return route{}, false
	}
	base, tag, plus := strings.Cut(local, "+")
	for _, a := range s.cfg.Addresses {
		if !strings.EqualFold(a.Address, base+"@"+domain) {
			continue
		}
		if plus && tag != "" && (a.Site == "" || a.Site == tag) {
			a.Site = tag
			return route{a}, true
		}
	}
	return route{}, false
}

// allow counts a message from sender within its hour.
func (s *Server) allow(sender string) (ok, full bool) {
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.senders[sender]
	if w == nil || now.Sub(w.start) >= time.Hour {
		if w == nil && len(s.senders) >= maxSenders {
			for k, v := range s.senders {
				if now.Sub(v.start) >= time.Hour {
					delete(s.senders, k)
				}
			}
			if len(s.senders) >= maxSenders {
				return false, true
			}
		}
		w = &window{start: now}
		s.senders[sender] = w
	}
	if w.n >= s.cfg.PerAddressPerHour {
		return false, false
	}
	w.n++
	return true, false
}

// SMTP answers. Permanent (5xx) ones make the sender's server bounce
// with the message; temporary (4xx) ones make it retry later.
var (
	errUnknownRcpt = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such incident intake address"}
	errNoRcpt      = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "no valid recipients"}
	errRate        = &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "too many messages from this address this hour; try later"}
	errBusy        = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "intake busy; try later"}
	errFailed      = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "incident not stored; try later"}
)

type session struct {
	s     *Server
	from  string
	rcpts []route
}

func (se *session) Mail(from string, _ *smtp.MailOptions) error {
	se.from = strings.ToLower(from)
	return nil
}

func (se *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	r, ok := se.s.resolve(to)
	if !ok {
		se.s.msgs.WithLabelValues("unknown_address").Inc()
		return errUnknownRcpt
	}
	se.rcpts = append(se.rcpts, r)
	return nil
}

func (se *session) Data(r io.Reader) error {
	s := se.s
	if len(se.rcpts) == 0 {
		return errNoRcpt
	}
	if ok, full := s.allow(se.from); !ok {
		io.Copy(io.Discard, r)
		if full {
			s.msgs.WithLabelValues("rate").Inc()
			return errBusy
		}
		s.msgs.WithLabelValues("rate").Inc()
		return errRate
	}
	raw, err := io.ReadAll(io.LimitReader(r, s.cfg.MaxMessage+1))
	if err == nil && int64(len(raw)) > s.cfg.MaxMessage {
		err = smtp.ErrDataTooLarge
	}
	if err != nil {
		if errors.Is(err, smtp.ErrDataTooLarge) {
			s.msgs.WithLabelValues("too_large").Inc()
			return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4},
				Message: fmt.Sprintf("message larger than %d bytes; send fewer or smaller scans", s.cfg.MaxMessage)}
		}
		return err
	}
	msg, err := Parse(bytes.NewReader(raw))
	if err != nil {
		s.msgs.WithLabelValues("malformed").Inc()
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "cannot read the message: " + err.Error()}
	}
	// One incident per message: the first recipient decides where it
	// belongs (a copy to two intake addresses is one complaint).
	rt := se.rcpts[0]
	if err := s.register(context.Background(), rt, msg); err != nil {
		var fe *incident.FieldErrors
		switch {
		case errors.As(err, &fe), errors.Is(err, incident.ErrTooLarge), errors.Is(err, incident.ErrFileType), errors.Is(err, incident.ErrNotFound):
			s.msgs.WithLabelValues("refused").Inc()
			s.log.Info("incident mail refused", "from", se.from, "err", err)
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "incident refused: " + oneLine(err.Error())}
		default:
			s.msgs.WithLabelValues("failed").Inc()
			s.log.Warn("incident mail not stored", "from", se.from, "err", err)
			return errFailed
		}
	}
	s.msgs.WithLabelValues("accepted").Inc()
	return nil
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 400 {
		s = s[:400]
	}
	return s
}

// register stores the attachments and the incident; files new with a
// refused message are removed again.
func (s *Server) register(ctx context.Context, rt route, msg Message) error {
	files := s.desk.Files()
	var created []string
	fail := func(err error) error {
		for _, h := range created {
			_ = files.Remove(context.WithoutCancel(ctx), h)
		}
		return err
	}
	d := incident.Draft{Org: rt.Org, Site: rt.Site, Department: rt.Department, Channel: incident.ChannelEmail, Type: rt.Type,
		CustomerContact: msg.FromAddr}
	if d.Type == "" {
		d.Type = incident.TypeService
	}
	// A display name is the customer's name only if it reads as one; an
	// address book's "info" or "ООО Ромашка 2" is left out rather than
	// refusing the complaint.
	if incident.PlausibleName(msg.FromName) {
		d.CustomerName = msg.FromName
	}
	d.Description = strings.TrimSpace(msg.Subject + "\n\n" + msg.Text)
	for _, f := range msg.Files {
		if len(d.Attachments) >= s.desk.Config().MaxAttachments {
			break
		}
		att, isNew, err := files.Put(ctx, f.Name, bytes.NewReader(f.Data))
		if err != nil {
			return fail(fmt.Errorf("attachment %q: %w", f.Name, err))
		}
		if isNew {
			created = append(created, att.Hash)
		}
		d.Attachments = append(d.Attachments, att)
	}
	p := access.Principal{Account: Principal, Role: access.Integrator, Scope: access.Scope{Orgs: []string{rt.Org}}}
	in, err := s.desk.Register(ctx, p, d)
	if err != nil {
		return fail(err)
	}
	s.log.Info("incident from e-mail", "incident", in.ID, "org", in.Org, "site", in.Site, "attachments", len(in.Attachments))
	return nil
}

type slogPrinter struct{ log *slog.Logger }

func (l slogPrinter) Printf(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l slogPrinter) Println(v ...any)               { l.log.Debug(fmt.Sprint(v...)) }

func (se *session) Reset()        { se.from, se.rcpts = "", nil }
func (se *session) Logout() error { return nil }
