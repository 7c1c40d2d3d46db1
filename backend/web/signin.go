package web

import (
	"errors"
	"net/http"
	"strings"

	"github.com/semko/semko/backend/access"
	"github.com/semko/semko/backend/account"
)

// safeNext keeps a sign-in's "next" on this site: a local path only, so
// the sign-in page cannot be used to send someone elsewhere.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

func (c *Console) signinForm(w http.ResponseWriter, r *http.Request) {
	if _, ok := access.FromContext(r.Context()); ok {
		Redirect(w, r, safeNext(r.URL.Query().Get("next")))
		return
	}
	c.Render(w, r, c.signin, map[string]string{"Next": safeNext(r.URL.Query().Get("next"))})
}

func (c *Console) signinPost(w http.ResponseWriter, r *http.Request) {
	if !c.Form(w, r) {
		return
	}
	name, password := strings.TrimSpace(r.PostForm.Get("name")), r.PostForm.Get("password")
	next := safeNext(r.PostForm.Get("next"))
	id, a, err := c.acc.SignIn(r.Context(), name, password, r.RemoteAddr, FromAcceptLanguage(r.Header.Get("Accept-Language")))
	if err != nil {
		key, status := "signin.wrong", http.StatusUnauthorized
		switch {
		case errors.Is(err, account.ErrThrottled):
			key, status = "signin.throttled", http.StatusTooManyRequests
		case !errors.Is(err, account.ErrSignIn):
			c.log.Error("sign-in failed", "err", err)
			key, status = "error.internal", http.StatusInternalServerError
		}
		c.RenderStatus(w, r, status, c.signin, map[string]string{"Next": next, "Name": name, "Error": c.T(Lang(r), key)})
		return
	}
	c.setCookie(w, r, id, int(c.acc.SessionTTL().Seconds()))
	ctx := access.WithPrincipal(r.Context(), a.Principal())
	c.acc.Audit(r.WithContext(ctx), "signin", a.Name, "")
	Redirect(w, r, next)
}

func (c *Console) signout(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(account.SessionCookie); err == nil {
		if err := c.acc.SignOut(r.Context(), ck.Value); err != nil {
			c.log.Error("sign-out not saved", "err", err)
			c.Error(w, r, http.StatusInternalServerError, "error.internal")
			return
		}
	}
	c.setCookie(w, r, "", -1)
	Redirect(w, r, "/signin")
}

func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: account.SessionCookie, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: c.opts.Secure || r.TLS != nil,
	})
}

func (c *Console) homePage(w http.ResponseWriter, r *http.Request) {
	c.mu.RLock()
	parts := append([]HomePart(nil), c.homeParts...)
	c.mu.RUnlock()
	p, _ := access.FromContext(r.Context())
	var sections []HomeSection
	for _, part := range parts {
		if len(part.Roles) > 0 && !containsRole(part.Roles, p.Role) {
			continue
		}
		html, err := part.Render(r)
		if err != nil {
			c.log.Warn("home section not shown", "section", part.Name, "err", err)
			continue
		}
		sections = append(sections, HomeSection{Name: part.Name, HTML: html})
	}
	c.Render(w, r, c.home, map[string]any{"Sections": sections})
}

func containsRole(roles []access.Role, r access.Role) bool {
	for _, x := range roles {
		if x == r {
			return true
		}
	}
	return false
}
