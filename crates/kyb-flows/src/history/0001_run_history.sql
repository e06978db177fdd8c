-- The run history: one row per flow run, its tasks, their checks, and the checks' numbers
-- (perfdata metrics and textfile gauges) as rows, so that any of them can be charted.
CREATE TABLE kyb_maint.runs (
    id bigserial PRIMARY KEY,
    flow text NOT NULL,
    host text NOT NULL,
    started_at timestamptz NOT NULL,
    duration_ms bigint NOT NULL,
    status text NOT NULL,
    failed_tasks integer NOT NULL,
    version text NOT NULL,
    -- A spooled run flushed twice is one run.
    UNIQUE (flow, host, started_at)
);
CREATE INDEX runs_started_at ON kyb_maint.runs (started_at);

CREATE TABLE kyb_maint.task_results (
    run_id bigint NOT NULL REFERENCES kyb_maint.runs (id) ON DELETE CASCADE,
    task text NOT NULL,
    status text NOT NULL,
    duration_ms bigint NOT NULL,
    summary text NOT NULL,
    PRIMARY KEY (run_id, task)
);
CREATE INDEX task_results_task ON kyb_maint.task_results (task);

CREATE TABLE kyb_maint.check_results (
    run_id bigint NOT NULL,
    task text NOT NULL,
    position integer NOT NULL,
    name text NOT NULL,
    status text NOT NULL,
    summary text NOT NULL,
    PRIMARY KEY (run_id, task, position),
    FOREIGN KEY (run_id, task) REFERENCES kyb_maint.task_results (run_id, task) ON DELETE CASCADE
);

CREATE TABLE kyb_maint.metrics (
    run_id bigint NOT NULL,
    task text NOT NULL,
    position integer NOT NULL,
    name text NOT NULL,
    -- A gauge's labels ({"mount": "/var"}); {} for a perfdata metric.
    labels jsonb NOT NULL DEFAULT '{}',
    value double precision NOT NULL,
    unit text NOT NULL,
    warn double precision,
    crit double precision,
    FOREIGN KEY (run_id, task, position) REFERENCES kyb_maint.check_results (run_id, task, position)
        ON DELETE CASCADE
);
CREATE INDEX metrics_task_name ON kyb_maint.metrics (task, name);
