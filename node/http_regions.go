package node

// The admin API's regions (issue 11 "Interface", docs/regions.md):
// PUT /v1/regions/{region} {"networks": [CIDR...], "fallback": [REGION...]},
// GET /v1/regions and DELETE /v1/regions/{region}. A region maps client
// networks to a region name; peers show a client only its region's peers
// and route it by its region's route targets. Bad networks and unknown
// fallback regions are refused before anything is proposed (400), a
// network another region holds is a conflict (409), and deleting a region
// another one falls back to is refused (409): nothing changes.

import (
	"net/http"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/adminapi"
)

func (n *Node) getRegions(w http.ResponseWriter, r *http.Request) error {
	st, err := n.readState(r)
	if err != nil {
		return err
	}
	out := make([]fsm.Region, 0, len(st.Regions))
	for _, reg := range st.Regions {
		reg.Networks, reg.Fallback = nonNil(reg.Networks), nonNil(reg.Fallback)
		out = append(out, reg)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (n *Node) putRegion(w http.ResponseWriter, r *http.Request) error {
	var b adminapi.RegionBody
	if err := decodeBody(r, &b); err != nil {
		return err
	}
	cmd := &fsm.PutRegion{Region: fsm.Region{Name: r.PathValue("region"), Networks: b.Networks, Fallback: b.Fallback}}
	return n.write(w, r, cmd, http.StatusOK, func(fsm.Applied) any {
		reg := cmd.Region.Canonical()
		reg.Networks, reg.Fallback = nonNil(reg.Networks), nonNil(reg.Fallback)
		return reg
	})
}

func (n *Node) deleteRegion(w http.ResponseWriter, r *http.Request) error {
	return n.write(w, r, &fsm.DeleteRegion{Name: r.PathValue("region")}, http.StatusNoContent, nil)
}
