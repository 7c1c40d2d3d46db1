// Package influxdb is Semko's one adapter to InfluxDB: writes through
// influxdb-client-go/v2 to /api/v2/write, and InfluxQL reads on /query,
// which InfluxDB 1.8, 2.x (through a DBRP mapping) and 3.x all serve
// (influxdb-client-go's QueryAPI speaks Flux only, which 3.x does not).
// The backend's writer and rollup job and the tests' local server use it.
package influxdb

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"
	"github.com/influxdata/influxdb-client-go/v2/api/write"
)

// Options locate the database.
type Options struct {
	URL   string // e.g. http://127.0.0.1:8086
	Token string // 2.x/3.x API token; 1.8 takes "user:password"; empty: none
	Org   string // for writes (2.x); ignored by 1.8
	// Bucket is written to ("db/rp" on 1.8); Database is read from,
	// default the part of Bucket before any "/".
	Bucket, Database string
	// Timeout bounds one request; default 30 s.
	Timeout time.Duration
}

// Client writes and queries one database.
type Client struct {
	opts   Options
	httpc  *http.Client
	client influxdb2.Client
	write  api.WriteAPIBlocking
}

// New returns a client; it contacts nothing yet.
func New(opts Options) (*Client, error) {
	if opts.URL == "" || opts.Bucket == "" {
		return nil, errors.New("influxdb: URL and Bucket are required")
	}
	if opts.Database == "" {
		opts.Database, _, _ = strings.Cut(opts.Bucket, "/")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	httpc := &http.Client{Timeout: opts.Timeout}
	c := influxdb2.NewClientWithOptions(opts.URL, opts.Token,
		influxdb2.DefaultOptions().SetHTTPClient(httpc).SetLogLevel(0))
	return &Client{opts: opts, httpc: httpc, client: c, write: c.WriteAPIBlocking(opts.Org, opts.Bucket)}, nil
}

// WriteRecord writes lines of line protocol in one request.
func (c *Client) WriteRecord(ctx context.Context, lines ...string) error {
	return c.write.WriteRecord(ctx, lines...)
}

// WritePoint writes points in one request.
func (c *Client) WritePoint(ctx context.Context, pts ...*write.Point) error {
	return c.write.WritePoint(ctx, pts...)
}

// Query runs InfluxQL stmt against the client's database.
func (c *Client) Query(ctx context.Context, stmt string) ([]Series, error) {
	return query(ctx, c.httpc, c.opts.URL, c.opts.Token, c.opts.Database, stmt)
}

// CloseIdleConnections releases the idle connections of the client's
// HTTP transport.
func (c *Client) CloseIdleConnections() { c.httpc.CloseIdleConnections() }

// Close releases the client.
func (c *Client) Close() {
	c.client.Close()
	c.httpc.CloseIdleConnections()
}

// Query runs InfluxQL q against db (none: "") on the InfluxDB at baseURL
// with no token, for tools and tests that hold no Client.
func Query(ctx context.Context, baseURL, db, q string) ([]Series, error) {
	return query(ctx, defaultHTTP, baseURL, "", db, q)
}

// defaultHTTP bounds every request of Query even if a caller's ctx has no
// deadline.
var defaultHTTP = &http.Client{Timeout: time.Minute}
