package broker

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"slices"
)

// A session is authorised by the credential it connected with. The ACL
// consults the current credentials on every publish and subscription, so
// a removed account can do nothing more; but a session opened with a
// secret that has since been rotated, or under a role since changed, would
// otherwise go on with its old rights until it disconnected. The broker
// ends such sessions as soon as the credentials change.

// authedSession is what a client ID's current session authenticated with.
type authedSession struct {
	cl   *mqtt.Client
	cred Credential
}

// noteAuthenticated records the credential cl connected with, until
// forgetAuthenticated at its disconnect: the map holds an entry per live
// connection, whatever client IDs accounts other than devices choose (and
// one per client ID whose connection failed between authentication and its
// CONNACK, where mochi reports no disconnect, until that ID connects again).
func (b *Broker) noteAuthenticated(cl *mqtt.Client, cr Credential) {
	b.authed.Store(cl.ID, &authedSession{cl: cl, cred: cr}) // a pointer: sync.Map compares values, and a Credential holds slices
}

// forgetAuthenticated drops cl's entry, unless a newer connection with the
// same client ID has replaced it already.
func (b *Broker) forgetAuthenticated(cl *mqtt.Client) {
	if v, ok := b.authed.Load(cl.ID); ok && v.(*authedSession).cl == cl {
		b.authed.CompareAndDelete(cl.ID, v)
	}
}

// watchCredentials ends revoked sessions after every change of the
// credentials, until Close.
func (b *Broker) watchCredentials() {
	defer b.watchers.Done()
	changed := b.opts.Credentials.Changed()
	for {
		select {
		case <-changed:
			// Ask for the next change before looking, so that a change
			// made while this pass runs is not missed.
			changed = b.opts.Credentials.Changed()
			b.revokeStale()
		case <-b.ctx.Done():
			return
		}
	}
}

// revokeStale disconnects every session whose account is gone or whose
// credential (secret hash or role) is no longer the one it connected with.
func (b *Broker) revokeStale() {
	for _, cl := range b.server.Clients.GetAll() {
		if !cl.Closed() {
			b.revokeIfStale(cl)
		}
	}
}

// revokeIfStale disconnects cl if the credential it authenticated with is
// no longer current. It also runs when a session is established: a change
// made between authentication and the session's registration with mochi
// is not seen by revokeStale.
func (b *Broker) revokeIfStale(cl *mqtt.Client) {
	v, ok := b.authed.Load(cl.ID)
	if !ok {
		return
	}
	if s := v.(*authedSession); s.cl != cl || b.current(s.cred) {
		return
	}
	b.authed.CompareAndDelete(cl.ID, v)
	b.count.revoked.Add(1)
	b.log.Warn("mqtt session closed: its account was removed or its secret or role changed",
		"client", truncate(cl.ID), "remote", cl.Net.Remote)
	_ = b.server.DisconnectClient(cl, packets.ErrNotAuthorized)
}

// current reports whether cr is still the account's credential.
func (b *Broker) current(cr Credential) bool {
	now, ok := b.opts.Credentials.lookup(cr.Username)
	return ok && now.Username == cr.Username && now.Hash == cr.Hash && now.Role == cr.Role &&
		slices.Equal(now.Orgs, cr.Orgs) && slices.Equal(now.Sites, cr.Sites) // a narrowed scope closes the session too
}
