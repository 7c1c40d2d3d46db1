package web

import (
	"errors"
	"net/http"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/account"
)

// registerAccount serves /account: everyone's own password, language and
// API tokens.
func (c *Console) registerAccount() {
	any := access.Rule{Any: true}
	c.Handle("GET /account", any, http.HandlerFunc(c.accountGet))
	c.Handle("POST /account/password", any, http.HandlerFunc(c.accountPassword))
	c.Handle("POST /account/lang", any, http.HandlerFunc(c.accountLang))
	c.Handle("POST /account/tokens", any, http.HandlerFunc(c.tokenCreate))
	c.Handle("POST /account/tokens/{id}/revoke", any, http.HandlerFunc(c.tokenRevoke))
	c.AddNav(NavItem{Path: "/account", Label: "nav.account", Order: 90})
}

type accountData struct {
	Account  account.Account
	Tokens   []account.Token
	NewToken string // the secret of a token just created, shown once
	Error    string
	Field    string // the field Error is about
}

func (c *Console) accountData(r *http.Request) (accountData, error) {
	p, _ := access.FromContext(r.Context())
	a, _, err := c.acc.Store().Account(r.Context(), p.Account)
	if err != nil {
		return accountData{}, err
	}
	toks, err := c.acc.Store().Tokens(r.Context(), p.Account)
	return accountData{Account: a, Tokens: toks}, err
}

func (c *Console) accountGet(w http.ResponseWriter, r *http.Request) {
	c.renderAccount(w, r, http.StatusOK, func(*accountData) {})
}

func (c *Console) renderAccount(w http.ResponseWriter, r *http.Request, status int, edit func(*accountData)) {
	d, err := c.accountData(r)
	if errors.Is(err, account.ErrNotFound) {
		// The bootstrap token has no account to show.
		c.Error(w, r, http.StatusNotFound, "account.none")
		return
	}
	if err != nil {
		c.log.Error("account page", "err", err)
		c.Error(w, r, http.StatusInternalServerError, "error.internal")
		return
	}
	edit(&d)
	c.RenderStatus(w, r, status, c.accountPage, d)
}

func (c *Console) accountPassword(w http.ResponseWriter, r *http.Request) {
	if !c.Form(w, r) {
		return
	}
	p, _ := access.FromContext(r.Context())
	fail := func(field, key string, args ...any) {
		c.renderAccount(w, r, http.StatusUnprocessableEntity, func(d *accountData) {
			d.Error, d.Field = c.T(Lang(r), key, args...), field
		})
	}
	if err := c.acc.CheckPassword(r.Context(), p.Account, r.PostForm.Get("current")); err != nil {
		fail("current", "account.current_wrong")
		return
	}
	pw := r.PostForm.Get("new")
	if pw != r.PostForm.Get("repeat") {
		fail("repeat", "account.repeat_differs")
		return
	}
	if err := account.ValidPassword(pw); err != nil {
		fail("new", "account.password_rule")
		return
	}
	if err := c.acc.SetPassword(r.Context(), p.Account, pw); err != nil {
		c.log.Error("password not changed", "account", p.Account, "err", err)
		c.Error(w, r, http.StatusInternalServerError, "error.internal")
		return
	}
	// Every session ended with the change, this one too: sign in again.
	c.setCookie(w, r, "", -1)
	Redirect(w, r, "/signin?done=password")
}

func (c *Console) accountLang(w http.ResponseWriter, r *http.Request) {
	if !c.Form(w, r) {
		return
	}
	p, _ := access.FromContext(r.Context())
	a, _, err := c.acc.Store().Account(r.Context(), p.Account)
	if err != nil {
		c.Error(w, r, http.StatusNotFound, "account.none")
		return
	}
	a.Lang = r.PostForm.Get("lang")
	if err := c.acc.Update(r.Context(), a); err != nil {
		c.renderAccount(w, r, http.StatusUnprocessableEntity, func(d *accountData) { d.Error, d.Field = err.Error(), "lang" })
		return
	}
	// The account's language wins over the one chosen at sign-in, so it
	// shows from the next page on.
	Redirect(w, r, "/account?done=saved")
}

func (c *Console) tokenCreate(w http.ResponseWriter, r *http.Request) {
	if !c.Form(w, r) {
		return
	}
	p, _ := access.FromContext(r.Context())
	secret, _, err := c.acc.NewToken(r.Context(), p.Account, r.PostForm.Get("name"))
	if errors.Is(err, account.ErrInvalid) {
		c.renderAccount(w, r, http.StatusUnprocessableEntity, func(d *accountData) {
			d.Error, d.Field = c.T(Lang(r), "account.token_name"), "token"
		})
		return
	}
	if err != nil {
		c.log.Error("token not created", "err", err)
		c.Error(w, r, http.StatusInternalServerError, "error.internal")
		return
	}
	// Shown once, on this answer: not a redirect, so the secret never
	// goes into a URL or the history.
	c.renderAccount(w, r, http.StatusCreated, func(d *accountData) { d.NewToken = secret })
}

func (c *Console) tokenRevoke(w http.ResponseWriter, r *http.Request) {
	p, _ := access.FromContext(r.Context())
	err := c.acc.Store().DeleteToken(r.Context(), p.Account, r.PathValue("id"))
	if errors.Is(err, account.ErrNotFound) {
		c.Error(w, r, http.StatusNotFound, "error.not_found")
		return
	}
	if err != nil {
		c.log.Error("token not revoked", "err", err)
		c.Error(w, r, http.StatusInternalServerError, "error.internal")
		return
	}
	Redirect(w, r, "/account?done=revoked")
}
