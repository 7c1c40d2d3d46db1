package rollup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// ErrQuery is returned when InfluxDB answers a query with an error (HTTP or
// statement level), as opposed to the request failing in transit.
var ErrQuery = errors.New("influxql query failed")

// maxResponse bounds one query response: rollups group by a handful of
// tags, so even a national fleet answers in well under this.
const maxResponse = 64 << 20

// series is one series of an InfluxQL result. Numbers are json.Number.
type series struct {
	Name    string            `json:"name"`
	Tags    map[string]string `json:"tags"`
	Columns []string          `json:"columns"`
	Values  [][]any           `json:"values"`
}

// number returns column col of row as float64; ok is false when the column
// is missing or null.
func (s series) number(row int, col string) (v float64, ok bool) {
	for i, c := range s.Columns {
		if c != col {
			continue
		}
		if row >= len(s.Values) || i >= len(s.Values[row]) {
			return 0, false
		}
		n, isNum := s.Values[row][i].(json.Number)
		if !isNum {
			return 0, false
		}
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

// influxQL runs InfluxQL over HTTP on /query, which InfluxDB 1.8, 2.x
// (through a DBRP mapping) and 3.x all serve. influxdb-client-go's QueryAPI
// speaks Flux only, hence this small reader.
type influxQL struct {
	url, token, db string
	client         *http.Client
}

func (q influxQL) query(ctx context.Context, stmt string) ([]series, error) {
	form := url.Values{"q": {stmt}, "db": {q.db}, "epoch": {"ns"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		strings.TrimRight(q.url, "/")+"/query", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if q.token != "" {
		// 2.x and 3.x take an API token; 1.8 takes "user:password" the same way.
		req.Header.Set("Authorization", "Token "+q.token)
	}
	resp, err := q.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, fmt.Errorf("query: read response: %w", err)
	}
	if len(raw) > maxResponse {
		return nil, fmt.Errorf("%w: response larger than %d bytes", ErrQuery, maxResponse)
	}
	out, err := decodeResponse(raw)
	if err != nil {
		return nil, fmt.Errorf("query: HTTP %s: %w", resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: HTTP %s", ErrQuery, resp.Status)
	}
	return out, nil
}

// decodeResponse parses the JSON body of /query: the series of every
// statement, in order. Any error reported in the body fails the whole call.
func decodeResponse(raw []byte) ([]series, error) {
	var body struct {
		Results []struct {
			Series []series `json:"series"`
			Error  string   `json:"error"`
		} `json:"results"`
		Error string `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil {
		return nil, fmt.Errorf("%w: undecodable response %.200q", ErrQuery, raw)
	}
	if body.Error != "" {
		return nil, fmt.Errorf("%w: %s", ErrQuery, body.Error)
	}
	var out []series
	for i, r := range body.Results {
		if r.Error != "" {
			return nil, fmt.Errorf("%w: statement %d: %s", ErrQuery, i, r.Error)
		}
		out = append(out, r.Series...)
	}
	return out, nil
}
