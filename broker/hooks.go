package broker

import (
	"bytes"
	"context"
	"slices"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/semko/semko/internal/textcut"
	"github.com/semko/semko/protocol"
)

// dummyHash is verified against when a username is unknown, so that an
// unknown user costs the same time as a wrong secret and timing does not
// reveal which usernames exist.
const dummyHash = "sha256$00000000000000000000000000000000$0000000000000000000000000000000000000000000000000000000000000000"

// authHook authenticates connections and enforces the ACL.
type authHook struct {
	mqtt.HookBase
	b *Broker
}

func (h *authHook) ID() string { return "semko-auth" }

func (h *authHook) Provides(b byte) bool {
	return b == mqtt.OnConnect || b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck ||
		b == mqtt.OnSessionEstablished || b == mqtt.OnDisconnect || b == mqtt.OnSubscribe
}

// OnConnect caps the client's keepalive (see Options.MaxKeepalive). mochi
// arms the connection's deadline from it right after this hook.
func (h *authHook) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	limit := uint16(h.b.opts.MaxKeepalive / time.Second)
	if ka := cl.State.Keepalive; ka == 0 || ka > limit {
		cl.State.Keepalive = limit
		cl.State.ServerKeepalive = true
	}
	return nil
}

func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	user := string(pk.Connect.Username)
	refuse := func(reason string) bool {
		h.b.count.authFailures.Add(1)
		// Never log the password, not even its length.
		h.b.warn("mqtt connection refused", "reason", reason, "user", truncate(user), "client", truncate(cl.ID), "remote", cl.Net.Remote)
		return false
	}
	if !pk.Connect.UsernameFlag || user == "" {
		return refuse("anonymous")
	}
	cr, ok := h.b.opts.Credentials.lookup(user)
	if !ok {
		VerifySecret(dummyHash, string(pk.Connect.Password))
		return refuse("unknown user")
	}
	if !VerifySecret(cr.Hash, string(pk.Connect.Password)) {
		return refuse("wrong secret")
	}
	// A client id names a session, queued messages included: whoever may
	// use an id may take its session over. So every id belongs to one
	// account (see Credentials.owner), and only that account may use it.
	switch owner, owned := h.b.opts.Credentials.owner(cl.ID); {
	case len(cl.ID) > maxClientIDLen:
		return refuse("client id too long")
	case cr.Role == RoleDevice && cl.ID != user:
		return refuse("device client id differs from its username")
	case !owned || owner.Username != user:
		// Otherwise an observer could take over the backend's persistent
		// session and its queued votes, or anyone a device's.
		return refuse("client id not the account's (use the username, or the username and a \"-suffix\")")
	}
	if will := cl.Properties.Will; will.Flag == 1 && !allowed(cr, will.TopicName, true) {
		h.b.count.aclDenied.Add(1)
		return refuse("will topic not allowed")
	}
	if cr.Role != RoleDevice && h.b.opts.MaxSessionsPerAccount > 0 {
		if n := h.sessions(user, cl.ID); n >= h.b.opts.MaxSessionsPerAccount {
			return refuse("too many sessions for the account")
		}
	}
	if cr.Role == RoleObserver {
		// An app's session ends with its connection whatever it asked for:
		// an abandoned persistent session would keep a synced copy of every
		// notice for days, written before the publisher's PUBACK.
		cl.Properties.Clean = true
		cl.Properties.Props.SessionExpiryInterval = 0
	}
	h.b.noteAuthenticated(cl, cr)
	return true
}

// maxClientIDLen bounds a client id: it is logged, stored and searched for
// its owner (Credentials.owner).
const maxClientIDLen = 256

// sessions counts the sessions of user's account other than clientID's,
// connected or persistent and waiting. Runs only for non-device accounts,
// which are few: a walk over mochi's clients is cheap enough at connect.
func (h *authHook) sessions(user, clientID string) int {
	n := 0
	for id, other := range h.b.server.Clients.GetAll() {
		if id != clientID && !other.Net.Inline && string(other.Properties.Username) == user {
			n++
		}
	}
	return n
}

// refusedFilter replaces a filter past MaxSubscriptions: mochi then refuses
// it as invalid (SUBACK 0x80 for MQTT 3.1.1, 0x8F for MQTT 5), since a
// SUBSCRIBE hook cannot refuse a filter otherwise.
const refusedFilter = "#/refused"

// OnSubscribe refuses the filters that would take the client past
// MaxSubscriptions. Filters the client holds already do not count.
func (h *authHook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	limit := h.b.opts.MaxSubscriptions
	if limit <= 0 || cl.Net.Inline {
		return pk
	}
	n := cl.State.Subscriptions.Len()
	var filters packets.Subscriptions
	for i, sub := range pk.Filters {
		if _, held := cl.State.Subscriptions.Get(sub.Filter); held {
			continue
		}
		if n < limit {
			n++
			continue
		}
		if filters == nil {
			filters = slices.Clone(pk.Filters)
		}
		filters[i].Filter = refusedFilter
		h.b.count.aclDenied.Add(1)
		h.b.warn("mqtt subscription refused: client holds the maximum", "user", truncate(string(cl.Properties.Username)),
			"client", truncate(cl.ID), "filter", truncate(sub.Filter), "limit", limit)
	}
	if filters != nil {
		pk.Filters = filters
	}
	return pk
}

func (h *authHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	h.b.revokeIfStale(cl)
}

func (h *authHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.b.forgetAuthenticated(cl)
}

func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	user := string(cl.Properties.Username)
	// The credential is looked up on every check, so a revoked or demoted
	// account loses its rights at once, connected or not.
	cr, ok := h.b.opts.Credentials.lookup(user)
	if ok && allowed(cr, topic, write) {
		return true
	}
	h.b.count.aclDenied.Add(1)
	h.b.warn("mqtt access denied", "user", user, "client", cl.ID, "topic", truncate(topic), "write", write)
	return false
}

// intakeHook hands every upstream device message to Intake before the
// PUBACK, applies the rate limit, and routes wills through the ACL and
// Intake.
type intakeHook struct {
	mqtt.HookBase
	b *Broker
}

func (h *intakeHook) ID() string { return "semko-intake" }

func (h *intakeHook) Provides(b byte) bool {
	return b == mqtt.OnPublish || b == mqtt.OnWill
}

func (h *intakeHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil // the backend's own downstream messages
	}
	h.b.count.messagesIn.Add(1)
	cr, ok := h.b.opts.Credentials.lookup(string(cl.Properties.Username))
	if !ok || cr.Role != RoleDevice {
		return pk, nil
	}
	wait, ok := h.b.limiter.reserve(cl.ID, maxRateWait)
	if !ok {
		h.b.count.rateLimited.Add(1)
		h.b.warn("mqtt publish over the rate limit, PUBACK withheld", "device", cr.Username,
			"rate", h.b.opts.PublishRate, "burst", h.b.opts.PublishBurst)
		return pk, packets.ErrRejectPacket
	}
	if wait > 0 {
		h.b.count.rateDelayed.Add(1)
		// An edge draining a backlog is slowed here as a matter of course:
		// one line per device per minute is enough to see who it is.
		if h.b.slowLog.allow(cl.ID) {
			h.b.log.Info("mqtt device over its publish rate, slowed down", "device", cr.Username,
				"rate", h.b.opts.PublishRate, "burst", h.b.opts.PublishBurst)
		}
		if !h.b.pause(wait) {
			return pk, packets.ErrRejectPacket // closing: the device resends elsewhere or later
		}
	}
	topicAttrs := []any{"device", cr.Username, "topic", truncate(pk.TopicName)}
	t, err := protocol.ParseTopic(pk.TopicName)
	if err != nil || t.Device != cr.Username || !t.Kind.Upstream() {
		// The ACL already refuses these; this guards against a hook order
		// change. Acknowledge and drop: resending cannot fix a topic.
		h.b.count.reject(reasonTopic)
		h.b.warn("mqtt message outside the contract discarded", topicAttrs...)
		return pk, packets.CodeSuccessIgnore
	}
	if pk.FixedHeader.Retain && !t.Kind.Retained() {
		// Only status is retained by contract; a retained vote would sit in
		// the store (and pebble) for every device, forever.
		pk.FixedHeader.Retain = false
	}
	if h.b.opts.Intake == nil {
		return pk, nil
	}
	m := Message{Topic: t, Payload: bytes.Clone(pk.Payload), Received: h.b.now(), ClientID: cl.ID}
	switch err := h.b.accept(m); {
	case err == nil:
		return pk, nil
	case protocol.Permanent(err):
		reason := rejectReason(err)
		h.b.count.reject(reason)
		h.b.warn("mqtt invalid message acknowledged and discarded", append(topicAttrs, "reason", reason, "error", err)...)
		return pk, packets.CodeSuccessIgnore
	default:
		h.b.count.intakeRetries.Add(1)
		h.b.warn("mqtt intake failed, PUBACK withheld so the device resends", append(topicAttrs, "error", err)...)
		return pk, packets.ErrRejectPacket
	}
}

// noWill is what OnWill returns to cancel a will: mochi has no veto for
// wills, but a publish to the empty topic matches no subscriber and an
// unretained one leaves nothing behind.
var noWill = mqtt.Will{}

func (h *intakeHook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	user := string(cl.Properties.Username)
	log := h.b.log.With("client", cl.ID, "topic", will.TopicName)
	switch {
	case h.b.closing.Load():
		// The broker is going away, not the device: an offline mark for the
		// whole fleet would be false and would flap back on restart.
		log.Debug("will suppressed: broker closing")
		return noWill, nil
	case h.b.takenOver(cl):
		// The device has already reconnected; its old death is stale.
		// Status.BDSeq lets the backend ignore one that slips through
		// anyway (a takeover of a connection already closing).
		log.Debug("will suppressed: session taken over")
		return noWill, nil
	}
	cr, ok := h.b.opts.Credentials.lookup(user)
	if !ok || !allowed(cr, will.TopicName, true) {
		h.b.count.aclDenied.Add(1)
		log.Warn("will denied", "user", user)
		return noWill, nil
	}
	t, err := protocol.ParseTopic(will.TopicName)
	if err == nil && will.Retain && !t.Kind.Retained() {
		// As for publishes (see OnPublish): a retained vote would be
		// replayed to every new subscriber, forever.
		will.Retain = false
	}
	if cr.Role != RoleDevice || h.b.opts.Intake == nil {
		return will, nil
	}
	if err != nil { // allowed() parsed it already
		return noWill, nil
	}
	m := Message{Topic: t, Payload: bytes.Clone(will.Payload), Received: h.b.now(), ClientID: cl.ID}
	switch err := h.b.accept(m); {
	case err == nil:
		return will, nil
	case protocol.Permanent(err):
		reason := rejectReason(err)
		h.b.count.reject(reason)
		log.Warn("invalid will discarded", "reason", reason, "error", err)
		return noWill, nil
	default:
		// A will is sent once and cannot be withheld for a retry; deliver it
		// anyway so subscribers and the retained status still see it.
		h.b.count.willIntakeFails.Add(1)
		log.Error("intake failed for a will; delivered without intake", "error", err)
		return will, nil
	}
}

// presenceHook reports devices' sessions coming and going, and counts
// messages mochi drops for slow clients.
type presenceHook struct {
	mqtt.HookBase
	b *Broker
}

func (h *presenceHook) ID() string { return "semko-presence" }

func (h *presenceHook) Provides(b byte) bool {
	return b == mqtt.OnSessionEstablish || b == mqtt.OnSessionEstablished ||
		b == mqtt.OnDisconnect || b == mqtt.OnPublishDropped
}

// OnSessionEstablish runs for a new connection just before mochi takes over
// an existing session with the same client ID. mochi closes the old
// connection first and marks it taken over only afterwards, so the old
// connection's OnDisconnect and OnWill can run in between and would see an
// ordinary disconnect. Noting the takeover here, before mochi closes it,
// closes that window (see takenOver).
//
// The mark is kept per connection, not per client ID: mochi sends the
// CONNACK before OnSessionEstablished, so a third connection can start its
// takeover of the second before the second's session is established, and
// a per-ID mark would be overwritten or cleared under it.
func (h *presenceHook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	if old, ok := h.b.server.Clients.Get(cl.ID); ok && old != cl && !old.Closed() {
		h.b.takeovers.Store(old, struct{}{})
	}
}

func (h *presenceHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	// mochi marks a connection taken over before the new session is
	// established; from then on the flag speaks for it and the mark can go.
	h.b.takeovers.Range(func(k, _ any) bool {
		if k.(*mqtt.Client).IsTakenOver() {
			h.b.takeovers.Delete(k)
		}
		return true
	})
	if h.isDevice(cl) {
		h.b.presence(cl.ID, true)
	}
}

func (h *presenceHook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	// On a takeover the old connection ends while the new session comes
	// up: reporting it would mark a connected device offline (mochi #173,
	// #483).
	takenOver := h.b.takenOver(cl)
	h.b.takeovers.Delete(cl)
	if takenOver || !h.isDevice(cl) {
		return
	}
	// The rate limiter keeps the device's bucket: a reconnect must not buy
	// a fresh burst (see rateLimiter.idle).
	h.b.limiter.idle(cl.ID)
	h.b.slowLog.forget(cl.ID)
	h.b.presence(cl.ID, false)
}

func (h *presenceHook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	// Counted by mochi in Info.MessagesDropped (see Stats.Dropped); logged
	// at debug because one slow client can drop thousands per second.
	h.b.log.Debug("message dropped: client write queue full", "client", cl.ID, "topic", pk.TopicName)
}

// takenOver reports whether cl's session is being or has been taken over
// by a newer connection with the same client ID.
func (b *Broker) takenOver(cl *mqtt.Client) bool {
	if cl.IsTakenOver() {
		return true
	}
	_, ok := b.takeovers.Load(cl)
	return ok
}

func (h *presenceHook) isDevice(cl *mqtt.Client) bool {
	cr, ok := h.b.opts.Credentials.lookup(string(cl.Properties.Username))
	return ok && cr.Role == RoleDevice && !cl.Net.Inline
}

// accept calls Intake with a deadline bounded by IntakeTimeout and by the
// broker's life.
func (b *Broker) accept(m Message) error {
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.IntakeTimeout)
	defer cancel()
	err := b.opts.Intake.Accept(ctx, m)
	if err == nil {
		b.count.intakeAccepted.Add(1)
	}
	return err
}

func (b *Broker) presence(clientID string, online bool) {
	if fn := b.onPresence.Load(); fn != nil {
		(*fn)(clientID, online)
	}
}

// truncate bounds a client-chosen string before it is logged.
func truncate(s string) string { return textcut.Trunc(s, 200) }
