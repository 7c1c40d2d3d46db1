package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// apiClient talks to a running backend's HTTP API for the client commands.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

// clientFlags registers -server and -token-file on fs; call the returned
// function after fs.Parse.
func clientFlags(fs *flag.FlagSet) func() (*apiClient, error) {
	server := fs.String("server", envOr("SEMKO_SERVER", "http://127.0.0.1:8080"), "backend HTTP API base URL (env SEMKO_SERVER)")
	tokenFile := fs.String("token-file", "", "file holding the API token (default: env SEMKO_API_TOKEN)")
	return func() (*apiClient, error) {
		token := os.Getenv("SEMKO_API_TOKEN")
		if *tokenFile != "" {
			b, err := os.ReadFile(*tokenFile)
			if err != nil {
				return nil, fmt.Errorf("token file: %w", err)
			}
			token = strings.TrimSpace(string(b))
		}
		if token == "" {
			return nil, errors.New("no API token: set SEMKO_API_TOKEN or -token-file")
		}
		return &apiClient{base: strings.TrimSuffix(*server, "/"), token: token, http: &http.Client{Timeout: 30 * time.Second}}, nil
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// do sends in (JSON, when not nil) and decodes the answer into out (when
// not nil). Non-2xx answers become errors carrying the API's message.
func (c *apiClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, e.Error)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}
