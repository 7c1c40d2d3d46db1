package natslocal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Size is the number of nodes: three is the smallest cluster where an R3
// stream survives the loss of one node.
const Size = 3

const (
	startTimeout = 60 * time.Second
	stopTimeout  = 15 * time.Second
)

// Auth, when set, turns authentication on: one config user (the backend)
// that bypasses the auth callout and serves it, and every other client
// (the devices) authorised by the callout, signed by CalloutIssuer.
type Auth struct {
	User, Password string
	// CalloutIssuer is the public account nkey ("A...") whose seed signs
	// the callout's responses.
	CalloutIssuer string
}

// Options configures a Cluster. Dir is required.
type Options struct {
	Dir    string
	Auth   *Auth
	Logger *slog.Logger
	// SyncAlways makes JetStream fsync every write (sync_interval: always),
	// for a power cut of every node at once; the default (fsync every two
	// minutes) is enough when at most one node dies at a time, since a
	// write is acknowledged after a quorum of nodes has it.
	SyncAlways bool
}

// Cluster is three nats-server processes routed to each other.
type Cluster struct {
	Nodes [Size]*Node
	log   *slog.Logger
}

// Node is one nats-server child process. Its ports and data directory stay
// the same across Kill/Stop and Start, as a restarted machine's would.
type Node struct {
	Name                                     string
	ClientAddr, MQTTAddr, RouteAddr, MonAddr string
	dir, bin, conf, logPath                  string
	log                                      *slog.Logger

	mu   sync.Mutex
	proc *process
}

type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start writes three node configurations under opts.Dir and starts the
// nodes; it returns once each answers /healthz. ctx bounds the start only.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Dir == "" {
		return nil, errors.New("natslocal: Options.Dir is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	bin, err := Ensure(ctx, opts.Logger)
	if err != nil {
		return nil, err
	}
	c := &Cluster{log: opts.Logger}
	// The twelve ports are picked with every listener held open until all
	// are chosen: closed one by one, the kernel may hand the same port out
	// twice.
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for i := range c.Nodes {
		n := &Node{Name: fmt.Sprintf("n%d", i+1), bin: bin, log: opts.Logger}
		n.dir = filepath.Join(opts.Dir, n.Name)
		for _, a := range []*string{&n.ClientAddr, &n.MQTTAddr, &n.RouteAddr, &n.MonAddr} {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return nil, fmt.Errorf("natslocal: pick a free port: %w", err)
			}
			held = append(held, l)
			*a = l.Addr().String()
		}
		n.conf, n.logPath = filepath.Join(n.dir, "nats.conf"), filepath.Join(n.dir, "nats.log")
		c.Nodes[i] = n
	}
	for _, l := range held {
		l.Close()
	}
	held = nil
	routes := make([]string, 0, Size)
	for _, n := range c.Nodes {
		routes = append(routes, fmt.Sprintf("%q", "nats-route://"+n.RouteAddr))
	}
	for _, n := range c.Nodes {
		if err := os.MkdirAll(filepath.Join(n.dir, "jetstream"), 0o755); err != nil {
			return nil, fmt.Errorf("natslocal: %w", err)
		}
		if err := os.WriteFile(n.conf, []byte(nodeConfig(n, routes, opts)), 0o644); err != nil {
			return nil, fmt.Errorf("natslocal: write config: %w", err)
		}
	}
	// All three at once: a JetStream cluster elects its meta leader only
	// once a quorum of peers is up, so the first /healthz waits for the others.
	for _, n := range c.Nodes {
		if err := n.spawn(); err != nil {
			c.Stop()
			return nil, err
		}
	}
	for _, n := range c.Nodes {
		if err := n.waitHealthy(ctx); err != nil {
			c.Stop()
			return nil, err
		}
	}
	if err := c.waitMQTTReady(ctx, opts.Auth); err != nil {
		c.Stop()
		return nil, err
	}
	c.log.Info("nats cluster ready", "mqtt", c.MQTTURLs(), "nats", c.ClientURLs())
	return c, nil
}

// waitMQTTReady stores a session and a retained message through each
// node's MQTT listener, and removes them, retrying until all of it
// succeeds. /healthz answers 200 on every node before JetStream can
// serve MQTT: in tests a first client was refused while the meta leader
// could not yet place the account's R3 streams ("no suitable peers for
// placement, peer offline"), and for some seconds after their creation
// the first session and retained writes timed out at 5 s. With Auth,
// the probe signs in as the callout's own user, which bypasses the
// callout (not running yet).
func (c *Cluster) waitMQTTReady(ctx context.Context, auth *Auth) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	for _, n := range c.Nodes {
		for {
			err := n.probeMQTT(auth)
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("natslocal: %s: MQTT not ready: %v; see %s", n.Name, err, n.logPath)
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
	return nil
}

// probeMQTT is one round of waitMQTTReady on n.
func (n *Node) probeMQTT(auth *Auth) error {
	id, topic := "natslocal-ready-"+n.Name, "natslocal/ready/"+n.Name
	connect := func(clean bool) (paho.Client, error) {
		o := paho.NewClientOptions().AddBroker(n.MQTTURL()).SetClientID(id).SetProtocolVersion(4).
			SetCleanSession(clean).SetAutoReconnect(false).SetConnectTimeout(10 * time.Second)
		if auth != nil {
			o.SetUsername(auth.User).SetPassword(auth.Password)
		}
		cl := paho.NewClient(o)
		if err := wait(cl.Connect()); err != nil {
			return nil, fmt.Errorf("connect: %w", err)
		}
		return cl, nil
	}
	cl, err := connect(false)
	if err != nil {
		return err
	}
	err = wait(cl.Publish(topic, 1, true, "ready"))
	if err == nil {
		err = wait(cl.Publish(topic, 1, true, "")) // an empty retained message removes it
	}
	cl.Disconnect(0)
	if err != nil {
		return fmt.Errorf("retained publish: %w", err)
	}
	// A clean session removes the stored one.
	if cl, err = connect(true); err != nil {
		return err
	}
	cl.Disconnect(0)
	return nil
}

// wait waits a bounded time for a paho token.
func wait(t paho.Token) error {
	if !t.WaitTimeout(15 * time.Second) {
		return errors.New("no answer in 15 s")
	}
	return t.Error()
}

// nodeConfig is one node's nats-server configuration.
func nodeConfig(n *Node, routes []string, opts Options) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by internal/natslocal; rewritten on every cluster start.\n")
	fmt.Fprintf(&b, "server_name: %s\nlisten: %q\nhttp: %q\n", n.Name, n.ClientAddr, n.MonAddr)
	// MQTT keeps its sessions and QoS 1 messages in JetStream streams
	// replicated on every node (R3 in a three-node cluster).
	fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n  max_memory_store: 64MB\n  max_file_store: 2GB\n", filepath.Join(n.dir, "jetstream"))
	if opts.SyncAlways {
		b.WriteString("  sync_interval: always\n")
	}
	b.WriteString("}\n")
	fmt.Fprintf(&b, "cluster {\n  name: semko\n  listen: %q\n  routes: [%s]\n}\n", n.RouteAddr, strings.Join(routes, ", "))
	// ack_wait bounds how long a PUBACK-less downstream QoS 1 message waits
	// before the server resends it to a device.
	fmt.Fprintf(&b, "mqtt {\n  listen: %q\n  ack_wait: \"30s\"\n}\n", n.MQTTAddr)
	if a := opts.Auth; a != nil {
		fmt.Fprintf(&b, "authorization {\n  timeout: 5s\n  users: [ { user: %q, password: %q } ]\n", a.User, a.Password)
		fmt.Fprintf(&b, "  auth_callout {\n    issuer: %q\n    auth_users: [ %q ]\n  }\n}\n", a.CalloutIssuer, a.User)
	}
	return b.String()
}

// MQTTURLs returns the nodes' MQTT listeners as tcp:// URLs.
func (c *Cluster) MQTTURLs() []string {
	out := make([]string, 0, Size)
	for _, n := range c.Nodes {
		out = append(out, n.MQTTURL())
	}
	return out
}

// ClientURLs returns the nodes' NATS client URLs, comma-separated as
// nats.Connect takes them.
func (c *Cluster) ClientURLs() string {
	out := make([]string, 0, Size)
	for _, n := range c.Nodes {
		out = append(out, n.ClientURL())
	}
	return strings.Join(out, ",")
}

// Stop stops every running node (SIGTERM, then SIGKILL after a while) and
// returns the first error.
func (c *Cluster) Stop() error {
	var first error
	for _, n := range c.Nodes {
		if n == nil {
			continue
		}
		if err := n.Stop(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// MQTTURL is the node's MQTT listener.
func (n *Node) MQTTURL() string { return "tcp://" + n.MQTTAddr }

// ClientURL is the node's NATS listener.
func (n *Node) ClientURL() string { return "nats://" + n.ClientAddr }

// LogPath is the file the node's output goes to.
func (n *Node) LogPath() string { return n.logPath }

// Running reports whether the node's process is alive.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return false
	}
	select {
	case <-n.proc.done:
		return false
	default:
		return true
	}
}

func (n *Node) spawn() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil {
		return fmt.Errorf("natslocal: %s is already running", n.Name)
	}
	lf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("natslocal: open log: %w", err)
	}
	defer lf.Close() // the child has its own descriptor
	cmd := exec.Command(n.bin, "-c", n.conf)
	cmd.Dir = n.dir
	cmd.Stdout, cmd.Stderr = lf, lf
	// Own process group, so a terminal's Ctrl-C reaches us and we stop the
	// node cleanly; Pdeathsig kills an orphaned node if we die first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("natslocal: start %s: %w", n.Name, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	n.proc = p
	n.log.Info("nats node started", "node", n.Name, "pid", cmd.Process.Pid, "mqtt", n.MQTTAddr)
	return nil
}

// waitHealthy polls the node's /healthz (JetStream included) until 200.
func (n *Node) waitHealthy(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	hc := http.Client{Timeout: 2 * time.Second}
	url := "http://" + n.MonAddr + "/healthz"
	for {
		n.mu.Lock()
		p := n.proc
		n.mu.Unlock()
		if p == nil {
			return fmt.Errorf("natslocal: %s was stopped while starting", n.Name)
		}
		select {
		case <-p.done:
			return fmt.Errorf("natslocal: %s exited at start (%v):\n%s", n.Name, p.err, n.LogTail(10))
		default:
		}
		if resp, err := hc.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("natslocal: %s not healthy: %w; see %s", n.Name, ctx.Err(), n.logPath)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Healthy reports whether the node answers /healthz with 200 now.
func (n *Node) Healthy() bool {
	hc := http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get("http://" + n.MonAddr + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Kill is the fault: SIGKILL, as a crash or power cut would. It waits for
// the process to exit. Killing a stopped node is a no-op.
func (n *Node) Kill() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p := n.proc; p != nil {
		n.proc = nil
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		n.log.Info("nats node killed", "node", n.Name)
	}
}

// Stop shuts the node down with SIGTERM (SIGKILL after stopTimeout).
func (n *Node) Stop() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.proc
	if p == nil {
		return nil
	}
	n.proc = nil
	select {
	case <-p.done:
		return fmt.Errorf("natslocal: %s had already exited: %v", n.Name, p.err)
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	return fmt.Errorf("natslocal: %s did not stop within %s, killed", n.Name, stopTimeout)
}

// Start brings a stopped or killed node back on its ports and data, and
// waits until it answers /healthz (the cluster's other nodes must form a
// quorum for that).
func (n *Node) Start(ctx context.Context) error {
	if err := n.spawn(); err != nil {
		return err
	}
	return n.waitHealthy(ctx)
}

// LogTail returns the last lines of the node's log.
func (n *Node) LogTail(lines int) string {
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		return err.Error()
	}
	s := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(s) > lines {
		s = s[len(s)-lines:]
	}
	return strings.Join(s, "\n")
}
