package web

import (
	"io/fs"
	"net/http"
)

// routes lists every page and action. The wrappers say who may reach it:
//
//   - signedIn: any signed-in operator or sender;
//   - operatorOnly: operators; a sender gets 403;
//   - selfOrOperator: operators, or the sender whose login is the route's
//     {name}; any other sender gets 404, as if the user did not exist.
//
// Every wrapper refuses a POST without the session's CSRF token (403).
// A page or action is one file, its handler a method of handler.
func (h *handler) routes() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", staticFiles(static)))

	mux.HandleFunc("GET /login", h.loginShow)
	mux.HandleFunc("POST /login", h.loginCheck)
	mux.Handle("POST /logout", h.signedIn(h.logout))

	mux.Handle("GET /{$}", h.signedIn(h.overview))

	mux.Handle("GET /users", h.operatorOnly(h.usersList))
	mux.Handle("GET /users/new", h.operatorOnly(h.userNew))
	mux.Handle("POST /users/new", h.operatorOnly(h.userAdd))
	mux.Handle("POST /users/move", h.operatorOnly(h.usersMove))
	mux.Handle("GET /users/{name}", h.selfOrOperator(h.userShow))
	mux.Handle("POST /users/{name}/email", h.selfOrOperator(h.userEmailSave))
	mux.Handle("POST /users/{name}/email/test", h.selfOrOperator(h.userEmailCheck))
	mux.Handle("POST /users/{name}/sender", h.selfOrOperator(h.userSenderSave))
	mux.Handle("POST /users/{name}/limits", h.operatorOnly(h.userLimitsSave))
	mux.Handle("POST /users/{name}/limits/reset", h.operatorOnly(h.userLimitsReset))
	mux.Handle("GET /users/{name}/spf", h.selfOrOperator(h.userSPF))
	mux.Handle("GET /users/{name}/profile.mobileconfig", h.selfOrOperator(h.userProfile))
	mux.Handle("POST /users/{name}/api-keys", h.selfOrOperator(h.apiKeyCreate))
	mux.Handle("GET /users/{name}/api-keys/{prefix}/revoke", h.selfOrOperator(h.apiKeyRevokeConfirm))
	mux.Handle("POST /users/{name}/api-keys/{prefix}/revoke", h.selfOrOperator(h.apiKeyRevoke))
	mux.Handle("GET /users/{name}/templates", h.selfOrOperator(h.templatesList))
	mux.Handle("GET /users/{name}/templates/new", h.selfOrOperator(h.templateNew))
	mux.Handle("GET /users/{name}/templates/{tmpl}", h.selfOrOperator(h.templateEdit))
	mux.Handle("POST /users/{name}/templates/save", h.selfOrOperator(h.templateSave))
	mux.Handle("POST /users/{name}/templates/preview", h.selfOrOperator(h.templatePreview))

	mux.Handle("GET /smarthosts", h.operatorOnly(h.smarthostsList))
	mux.Handle("GET /smarthosts/new", h.operatorOnly(h.smarthostNew))
	mux.Handle("POST /smarthosts/new", h.operatorOnly(h.smarthostAdd))
	mux.Handle("POST /smarthosts/new/test", h.operatorOnly(h.smarthostCheck))
	mux.Handle("GET /smarthosts/{name}", h.operatorOnly(h.smarthostShow))
	mux.Handle("POST /smarthosts/{name}", h.operatorOnly(h.smarthostSave))
	mux.Handle("POST /smarthosts/{name}/test", h.operatorOnly(h.smarthostCheck))
	mux.Handle("POST /smarthosts/{name}/delete", h.operatorOnly(h.smarthostDelete))

	mux.Handle("GET /queue", h.operatorOnly(h.queueList))
	mux.Handle("GET /messages", h.signedIn(h.messagesList))
	mux.Handle("GET /queue/{id}", h.signedIn(h.messageShow))
	mux.Handle("GET /queue/{id}/retry", h.signedIn(h.messageConfirm(retryAction)))
	mux.Handle("POST /queue/{id}/retry", h.signedIn(h.messageRetry))
	mux.Handle("GET /queue/{id}/bounce", h.signedIn(h.messageConfirm(bounceAction)))
	mux.Handle("POST /queue/{id}/bounce", h.signedIn(h.messageBounce))
	mux.Handle("GET /queue/{id}/delete", h.signedIn(h.messageConfirm(deleteAction)))
	mux.Handle("POST /queue/{id}/delete", h.signedIn(h.messageDelete))

	mux.Handle("GET /captured", h.operatorOnly(h.capturedList))
	mux.Handle("GET /captured/{id}", h.operatorOnly(h.capturedShow))

	mux.Handle("GET /suppressions", h.signedIn(h.suppressionsList))
	mux.Handle("POST /suppressions", h.operatorOnly(h.suppressionAdd))
	mux.Handle("GET /suppressions/lift", h.signedIn(h.suppressionLiftConfirm))
	mux.Handle("POST /suppressions/lift", h.signedIn(h.suppressionLift))

	// Anything else: a signed-out visitor is sent to sign in (and learns
	// nothing about which pages exist), a signed-in one gets 404.
	mux.Handle("/", h.signedIn(h.notFound))
	return mux
}
