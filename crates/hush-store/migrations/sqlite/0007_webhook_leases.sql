-- Who delivers each webhook queue (app, endpoint): one node at a time, until
-- `until_ms` (Unix ms). The holder renews its lease before every request;
-- when a node dies, another takes the queue over once the lease ran out
-- (at-least-once: the batch in flight may be sent again). Events stay in
-- webhook_outbox until delivered, in id order, so a queue keeps its order
-- across the cluster.
CREATE TABLE webhook_leases (
    app_id   TEXT   NOT NULL,
    endpoint TEXT   NOT NULL,
    holder   TEXT   NOT NULL,
    until_ms BIGINT NOT NULL,
    PRIMARY KEY (app_id, endpoint)
);
