package loadgen

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The remote protocol drives a Fleet in another process, one command per
// line on its stdin, one answer per line on its stdout:
//
//	enqueue-all N   -> ok | error <message>
//	stats           -> <Stats as JSON>
//	quit            -> (the process ends)
//
// A big fleet of clients needs its own process: it would distort the
// broker's memory figures and share its open-files limit.

// Serve runs f until ctx is done or "quit" arrives, answering commands read
// from r on w. The caller runs f.Run itself.
func Serve(ctx context.Context, f *Fleet, r io.Reader, w io.Writer) error {
	sc := bufio.NewScanner(r)
	out := bufio.NewWriter(w)
	for sc.Scan() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		cmd, arg, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		var answer string
		switch cmd {
		case "enqueue-all":
			n, err := strconv.Atoi(arg)
			if err == nil {
				err = f.EnqueueAll(n)
			}
			answer = "ok"
			if err != nil {
				answer = "error " + err.Error()
			}
		case "stats":
			b, _ := json.Marshal(f.Stats())
			answer = string(b)
		case "quit":
			return nil
		default:
			answer = "error unknown command " + strconv.Quote(cmd)
		}
		if _, err := fmt.Fprintln(out, answer); err != nil {
			return fmt.Errorf("answer: %w", err)
		}
		if err := out.Flush(); err != nil {
			return fmt.Errorf("answer: %w", err)
		}
	}
	return sc.Err()
}

// Remote is a Fleet running in a child process (see Serve).
type Remote struct {
	cmd     *exec.Cmd
	in      io.WriteCloser
	out     *bufio.Scanner
	outFile *os.File // for read deadlines; nil if the pipe is not a file

	mu sync.Mutex // one command at a time
}

// StartRemote writes opts to optsPath and starts argv with optsPath as its
// last argument; the child is expected to build the Fleet from that file,
// run it and Serve on its stdin and stdout. Its stderr goes to stderr.
func StartRemote(argv []string, optsPath string, opts Options, stderr io.Writer) (*Remote, error) {
	b, err := json.Marshal(opts)
	if err != nil {
		return nil, fmt.Errorf("remote options: %w", err)
	}
	if err := os.WriteFile(optsPath, b, 0o600); err != nil {
		return nil, fmt.Errorf("remote options: %w", err)
	}
	cmd := exec.Command(argv[0], append(append([]string(nil), argv[1:]...), optsPath)...)
	cmd.Stderr = stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("remote stdin: %w", err)
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("remote stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start generator: %w", err)
	}
	sc := bufio.NewScanner(outPipe)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	f, _ := outPipe.(*os.File)
	return &Remote{cmd: cmd, in: in, out: sc, outFile: f}, nil
}

// ReadOptions reads what StartRemote wrote, for the child.
func ReadOptions(path string) (Options, error) {
	var o Options
	b, err := os.ReadFile(path)
	if err != nil {
		return o, fmt.Errorf("generator options: %w", err)
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return o, fmt.Errorf("generator options: %w", err)
	}
	return o, nil
}

// callTimeout bounds one command's answer.
const callTimeout = time.Minute

func (r *Remote) call(line string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// A child that stops answering fails the call instead of hanging it.
	if r.outFile != nil {
		_ = r.outFile.SetReadDeadline(time.Now().Add(callTimeout))
	}
	if _, err := fmt.Fprintln(r.in, line); err != nil {
		return "", fmt.Errorf("generator %s: %w", line, err)
	}
	if !r.out.Scan() {
		return "", fmt.Errorf("generator %s: no answer: %v", line, r.out.Err())
	}
	ans := r.out.Text()
	if msg, ok := strings.CutPrefix(ans, "error "); ok {
		return "", fmt.Errorf("generator %s: %s", line, msg)
	}
	return ans, nil
}

// EnqueueAll presses n votes on every unit of the remote fleet.
func (r *Remote) EnqueueAll(n int) error {
	_, err := r.call("enqueue-all " + strconv.Itoa(n))
	return err
}

// Stats returns the remote fleet's counters.
func (r *Remote) Stats() (Stats, error) {
	var s Stats
	ans, err := r.call("stats")
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal([]byte(ans), &s); err != nil {
		return s, fmt.Errorf("generator stats: %w", err)
	}
	return s, nil
}

// Close asks the child to quit and waits for it; a child still running
// after 30 s is killed.
func (r *Remote) Close() error {
	_, _ = fmt.Fprintln(r.in, "quit")
	r.in.Close()
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	var err error
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case err = <-done:
	case <-t.C:
		_ = r.cmd.Process.Kill()
		<-done
		return errors.New("generator did not quit within 30 s: killed")
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return fmt.Errorf("generator: %w", err)
	}
	return err
}
