package admin

import (
	"errors"
	"net/http"
	"time"

	"outbound/auth"
)

// The operators of the web interface: `outbound operator add/list/del`
// reach them here, since only the running server opens the database.

func (a *api) registerOperators(mux *http.ServeMux) {
	mux.Handle("GET /api/operators", a.authed(a.listOperators))
	mux.Handle("POST /api/operators", a.authed(a.addOperator))
	mux.Handle("DELETE /api/operators/{name}", a.authed(a.deleteOperator))
}

// OperatorView is an operator as the API lists it: never the hash.
type OperatorView struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
}

// OperatorRequest is the body of POST /api/operators.
type OperatorRequest struct {
	Name     string `json:"name"`
	Password string `json:"password"`
}

// operatorsOrRefuse is the store, or the refusal of a server without one.
func (a *api) operatorsOrRefuse() (*auth.Operators, error) {
	if a.Operators == nil {
		return nil, &httpError{status: http.StatusNotImplemented, msg: "this server keeps no operators"}
	}
	return a.Operators, nil
}

func (a *api) listOperators(w http.ResponseWriter, r *http.Request) error {
	ops, err := a.operatorsOrRefuse()
	if err != nil {
		return err
	}
	list, err := ops.List()
	if err != nil {
		return err
	}
	out := make([]OperatorView, 0, len(list))
	for _, op := range list {
		out = append(out, OperatorView{Name: op.Name, Created: op.Created})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *api) addOperator(w http.ResponseWriter, r *http.Request) error {
	ops, err := a.operatorsOrRefuse()
	if err != nil {
		return err
	}
	var req OperatorRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	op, err := ops.Add(req.Name, req.Password)
	if errors.Is(err, auth.ErrOperatorExists) {
		return &httpError{status: http.StatusConflict, msg: err.Error()}
	}
	if err != nil {
		return badRequest("%v", err)
	}
	a.Logger.Info("operator added", "operator", op.Name)
	writeJSON(w, http.StatusCreated, OperatorView{Name: op.Name, Created: op.Created})
	return nil
}

func (a *api) deleteOperator(w http.ResponseWriter, r *http.Request) error {
	ops, err := a.operatorsOrRefuse()
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	err = ops.Delete(name)
	if errors.Is(err, auth.ErrNoSuchOperator) {
		return &httpError{status: http.StatusNotFound, msg: err.Error()}
	}
	if err != nil {
		return err
	}
	a.Logger.Info("operator deleted", "operator", name)
	writeJSON(w, http.StatusOK, map[string]string{"deleted": name})
	return nil
}
