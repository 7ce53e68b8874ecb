// Package adminapi holds the JSON wire types of the admin HTTP API
// (docs/admin-api.md, docs/openapi.yaml): the request bodies and answers
// that node's handlers encode and decode and that `switchyard ctl`
// sends and reads. One declaration per shape, so the server and its CLI
// cannot drift apart; openapi_test.go checks them against the OpenAPI
// document so the docs cannot drift either.
//
// Field names and shapes are a contract with every client (ctl, the
// console, operators' scripts): extend them, never rename or retype a
// field. Where the replicated state's own types are the wire shape
// (fsm.Peer, fsm.Quota, fsm.Cluster, fsm.RouteTargets...), they are
// embedded rather than copied.
package adminapi
