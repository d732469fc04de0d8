// Pins the Gateway API release whose experimental-channel CRDs the local control plane serves,
// so that the admission rules on routes (issue 8) meet the real schemas. Downloaded by
// `cargo xtask upstream` and on first use; nothing is built or imported from it.
module gongshu.io/e2e/upstream/gateway-api

go 1.26.0

require sigs.k8s.io/gateway-api v1.6.3
