package delivery

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/semko/semko/backend/alert/notify/email"
	"github.com/semko/semko/backend/elector"
	"github.com/semko/semko/backend/report"
)

// Sender sends one e-mail; *email.Sender is one.
type Sender interface {
	Send(ctx context.Context, m email.Message) error
}

// Defaults of zero Options fields.
const (
	DefaultEvery       = time.Minute
	DefaultSendHour    = 7
	DefaultMaxAttempts = 12
	maxPause           = time.Hour
)

// Options configures a Job.
type Options struct {
	Store   Store
	Builder *report.Builder
	Sender  Sender
	// Zone is a scope's time zone (the site's, else the organisation's);
	// nil or a nil answer means UTC.
	Zone func(org, site string) *time.Location
	// Every is how often due reports are looked for. Default one minute.
	Every time.Duration
	// SendHour is the hour of the day, in the scope's zone, from which a
	// closed period's report is sent. Default 7.
	SendHour int
	// MaxAttempts bounds the tries of one delivery. Default 12 (the pause
	// doubles from one minute up to an hour, so about five hours).
	MaxAttempts int
	Clock       clockwork.Clock
	// Cluster, when set (a replica of a cluster: backend/elector's
	// Slots.Every), makes one replica run each period: every replica's
	// schedule starts on a multiple of the period and each run first claims
	// its slot. Nil: this process runs every period itself.
	Cluster    func(period time.Duration) gocron.Locker
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Job sends the reports that are due.
type Job struct {
	opts  Options
	log   *slog.Logger
	sent  *prometheus.CounterVec
	runMu sync.Mutex
}

// New checks opts.
func New(opts Options) (*Job, error) {
	if opts.Store == nil || opts.Builder == nil || opts.Sender == nil {
		return nil, errors.New("delivery: Store, Builder and Sender are required")
	}
	if opts.SendHour < 0 || opts.SendHour > 23 || opts.Every < 0 || opts.MaxAttempts < 0 {
		return nil, errors.New("delivery: SendHour must be 0..23, Every and MaxAttempts not negative")
	}
	opts.Every = cmp.Or(opts.Every, DefaultEvery)
	if opts.SendHour == 0 {
		opts.SendHour = DefaultSendHour
	}
	opts.MaxAttempts = cmp.Or(opts.MaxAttempts, DefaultMaxAttempts)
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	j := &Job{opts: opts, log: opts.Logger.With("job", "report-delivery"),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "semko_report_deliveries_total",
			Help: "Scheduled report deliveries by result (sent, failed, given_up).",
		}, []string{"result"})}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(j.sent); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return j, nil
}

// Run looks for due reports at once and then every Options.Every until
// ctx ends.
func (j *Job) Run(ctx context.Context) error {
	s, err := gocron.NewScheduler(gocron.WithClock(j.opts.Clock))
	if err != nil {
		return fmt.Errorf("new scheduler: %w", err)
	}
	_, err = s.NewJob(gocron.DurationJob(j.opts.Every),
		gocron.NewTask(func(ctx context.Context) { _, _ = j.RunOnce(ctx) }),
		append([]gocron.JobOption{
			gocron.WithName("semko-report-delivery"),
			gocron.WithSingletonMode(gocron.LimitModeReschedule),
			gocron.WithContext(ctx),
		}, elector.JobOptions(j.opts.Cluster, j.opts.Clock.Now(), j.opts.Every)...)...)
	if err != nil {
		_ = s.Shutdown()
		return fmt.Errorf("schedule report delivery: %w", err)
	}
	s.Start()
	<-ctx.Done()
	if err := s.Shutdown(); err != nil {
		return fmt.Errorf("stop report delivery: %w", err)
	}
	return nil
}

// Due is the last closed period of kind k at now in loc, and when its
// report is due: the day after it ends at hour (Monday 07:00 for a week,
// the 1st at 07:00 for a month or quarter).
func Due(k report.Kind, now time.Time, loc *time.Location, hour int) (report.Period, time.Time, error) {
	cur, err := report.NewPeriod(k, now, loc)
	if err != nil {
		return report.Period{}, time.Time{}, err
	}
	last := cur.Previous()
	e := last.End
	return last, time.Date(e.Year(), e.Month(), e.Day(), hour, 0, 0, 0, loc), nil
}

// pause is how long to wait after the n-th failed attempt.
func pause(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	if n > 7 {
		return maxPause
	}
	return min(maxPause, time.Minute<<(n-1))
}

// RunOnce sends every report that is due and not yet sent; it returns how
// many it sent. A failure of one subscription does not stop the others.
func (j *Job) RunOnce(ctx context.Context) (int, error) {
	j.runMu.Lock()
	defer j.runMu.Unlock()
	subs, err := j.opts.Store.Subscriptions(ctx)
	if err != nil {
		j.log.Warn("report delivery: read subscriptions", "err", err)
		return 0, fmt.Errorf("read subscriptions: %w", err)
	}
	sent := 0
	var errs []error
	for _, s := range subs {
		ok, err := j.deliver(ctx, s)
		if ok {
			sent++
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("subscription %d: %w", s.ID, err))
		}
	}
	return sent, errors.Join(errs...)
}

func (j *Job) zone(s Subscription) *time.Location {
	if j.opts.Zone != nil {
		if z := j.opts.Zone(s.Org, s.Site); z != nil {
			return z
		}
	}
	return time.UTC
}

// deliver sends s's last closed period if it is due, not sent, and not
// waiting after a failure.
func (j *Job) deliver(ctx context.Context, s Subscription) (bool, error) {
	loc := j.zone(s)
	now := j.opts.Clock.Now().In(loc)
	period, due, err := Due(s.Period, now, loc, j.opts.SendHour)
	if err != nil {
		return false, err
	}
	if now.Before(due) {
		return false, nil
	}
	d, found, err := j.opts.Store.Delivery(ctx, s.ID, period.Start)
	if err != nil {
		return false, fmt.Errorf("read delivery: %w", err)
	}
	if found && (d.Status == StatusSent || d.Attempts >= j.opts.MaxAttempts || now.Before(d.At.Add(pause(d.Attempts)))) {
		return false, nil
	}
	log := j.log.With("subscription", s.ID, "account", s.Account, "period", period.Start.Format(time.DateOnly))
	d = Delivery{Subscription: s.ID, PeriodStart: period.Start, Attempts: d.Attempts + 1, At: j.opts.Clock.Now()}
	err = j.send(ctx, s, period)
	if err == nil {
		d.Status = StatusSent
		j.sent.WithLabelValues("sent").Inc()
		log.Info("report sent", "to", len(s.Recipients))
	} else {
		d.Status, d.LastError = StatusFailed, err.Error()
		// A permanent refusal (a bad address, a server refusing us) is
		// not retried: trying again would send to the good recipients
		// twice or fail the same way.
		if errors.Is(err, email.ErrPermanent) {
			d.Attempts = max(d.Attempts, j.opts.MaxAttempts)
		}
		result := "failed"
		if d.Attempts >= j.opts.MaxAttempts {
			result = "given_up"
		}
		j.sent.WithLabelValues(result).Inc()
		log.Warn("report not sent", "attempt", d.Attempts, "err", err)
	}
	if rerr := j.opts.Store.Record(ctx, d); rerr != nil {
		return d.Status == StatusSent, fmt.Errorf("record delivery: %w", rerr)
	}
	return d.Status == StatusSent, err
}

func (j *Job) send(ctx context.Context, s Subscription, p report.Period) error {
	req := s.request(p)
	rep, err := j.opts.Builder.Build(ctx, req)
	if err != nil {
		return fmt.Errorf("build report: %w", err)
	}
	var buf bytes.Buffer
	if err := rep.Write(&buf, s.Format); err != nil {
		return err
	}
	subject, body := report.MailText(req)
	return j.opts.Sender.Send(ctx, email.Message{
		To: s.Recipients, Subject: subject, Text: body,
		// One Message-ID per subscription and period: a retry after a
		// lost reply is recognised as the same message by mail systems.
		MessageID: fmt.Sprintf("semko-report-%d-%s", s.ID, p.Start.Format("20060102")),
		Attachments: []email.Attachment{{Name: report.FileName(req, s.Format), ContentType: report.ContentType[s.Format],
			Data: buf.Bytes()}},
	})
}
