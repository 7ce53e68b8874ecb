# Prometheus for the compose demo, FROM scratch (no base image can be pulled where this is
# built): Debian's /usr/bin/prometheus is dynamically linked, so `make prometheus-image` copies
# it with the libraries `ldd` lists (libc and the loader) into the build context's root/.
FROM scratch
COPY root/ /
VOLUME /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
