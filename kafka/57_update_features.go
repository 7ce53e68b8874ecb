package kafka

// UpdateFeatures (57): all versions kmsg and the backend share.
//
// With one backend cluster, forwarded to its controller. Feature levels
// belong to each cluster, so with several it is answered INVALID_REQUEST
// (at the client's version: v2 dropped the results array) with a message
// saying to update each cluster directly.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleUpdateFeatures(r *request) error {
	c, start := r.c, r.start
	if len(r.set.sorted) > 1 {
		resp := kmsg.NewPtrUpdateFeaturesResponse()
		// At the client's version: v2 dropped the results array, so a v0
		// encoding does not decode there.
		resp.Version = r.version
		resp.ErrorCode = kerr.InvalidRequest.Code
		msg := "switchyard: feature levels belong to each backend cluster; update them on each cluster directly"
		resp.ErrorMessage = &msg
		return c.respond(r, start, resp)
	}
	return toController(r)
}
