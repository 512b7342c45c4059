"""The shared configuration in config/, rendered once for every target: the broker, Prometheus's scrape jobs,
and the Kubernetes copies of both (`indmlops kube-config`)."""
