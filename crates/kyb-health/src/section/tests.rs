use super::*;
use std::os::unix::fs::PermissionsExt;

fn read<T: serde::de::DeserializeOwned>(text: &str) -> T {
    toml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// What parse_url says of `url`, as validate() words it.
fn url_error(url: &str) -> String {
    kyb_core::error_chain(&parse_url(url).unwrap_err())
}

/// A password file with `mode`, holding `text`.
fn password_file(dir: &Path, text: &str, mode: u32) -> PathBuf {
    let path = dir.join("pw");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

mod app {
    use super::*;

    #[test]
    fn defaults_are_the_documented_numbers() {
        let a: AppSection = read("base_url = \"http://127.0.0.1:8080\"");
        assert_eq!(a, AppSection::new("http://127.0.0.1:8080"));
        assert_eq!((a.health_path.as_str(), a.metrics_path.as_str()), ("/health", "/metrics"));
        assert_eq!(a.timeout_ms.get(), 5_000);
        assert_eq!((a.max_body_bytes, a.max_snapshot_bytes), (1024 * 1024, 8 * 1024 * 1024));
        assert_eq!(a.max_redirects, 5);
        assert_eq!(a.latency_ms, Thresholds::new(500.0, 2_000.0));
        a.validate().unwrap();
    }

    #[test]
    fn base_url_is_required_and_unknown_keys_are_refused() {
        let err = toml::from_str::<AppSection>("health_path = \"/h\"").unwrap_err();
        assert!(err.message().contains("missing field `base_url`"), "{err}");
        let err = toml::from_str::<AppSection>("base_url = \"http://a\"\ntimout_ms = 1").unwrap_err();
        assert!(err.message().contains("unknown field `timout_ms`"), "{err}");
        assert!(toml::from_str::<AppSection>("base_url = \"http://a\"\ntimeout_ms = 0").is_err());
    }

    #[test]
    fn every_key_reads_and_round_trips() {
        let a: AppSection = read(
            "base_url = \"http://app.internal:9000/kyb/\"\nhealth_path = \"/healthz\"\n\
             metrics_path = \"/prom\"\ntimeout_ms = 2500\nmax_body_bytes = 2048\n\
             max_snapshot_bytes = 4096\nmax_redirects = 0\nlatency_ms = { warn = 100, crit = 300 }\n",
        );
        assert_eq!(a.base_url, "http://app.internal:9000/kyb/");
        assert_eq!((a.health_path.as_str(), a.metrics_path.as_str()), ("/healthz", "/prom"));
        assert_eq!(a.timeout_ms.get(), 2_500);
        assert_eq!((a.max_body_bytes, a.max_snapshot_bytes, a.max_redirects), (2048, 4096, 0));
        assert_eq!(a.latency_ms, Thresholds::new(100.0, 300.0));
        assert_eq!(read::<AppSection>(&toml::to_string(&a).unwrap()), a);
    }

    #[test]
    fn validate_names_the_key() {
        let with =
            |extra: &str| read::<AppSection>(&format!("base_url = \"http://a:1\"\n{extra}")).validate();
        for (extra, key, message) in [
            ("health_path = \"health\"", "health_path", "must start with `/`, got \"health\""),
            ("metrics_path = \"\"", "metrics_path", "must start with `/`, got \"\""),
            ("latency_ms = { warn = 3, crit = 2 }", "latency_ms", "warn (3) must not be above crit (2)"),
            ("max_body_bytes = 0", "max_body_bytes", "must be at least 1"),
            ("max_snapshot_bytes = 4095", "max_snapshot_bytes", "must be at least 4096 (bytes), got 4095"),
        ] {
            assert_eq!(with(extra), Err(FieldError::new(key, message)), "{extra}");
        }
        for url in ["ftp://a", "https://a", "not a url", "http://"] {
            let err = AppSection::new(url).validate().unwrap_err();
            assert_eq!(err, FieldError::new("base_url", url_error(url.trim_end_matches('/'))), "{url}");
        }
        assert!(AppSection::new("ftp://a").validate().unwrap_err().message.contains("ftp"));
        // The trailing slash goes before the URL is checked, as before it is joined.
        AppSection::new("http://a:1/").validate().unwrap();
    }

    #[test]
    fn the_probe_and_the_snapshot_join_the_paths_to_the_base() {
        let mut a = AppSection::new("http://127.0.0.1:8080/");
        a.timeout_ms = TimeoutMs::ms(1_500);
        a.max_redirects = 2;
        a.latency_ms = Thresholds::new(100.0, 200.0);
        assert_eq!(
            a.probe(),
            AppConfig {
                health_url: "http://127.0.0.1:8080/health".into(),
                timeout_ms: 1_500,
                max_body_bytes: 1024 * 1024,
                max_redirects: 2,
                latency_ms: Thresholds::new(100.0, 200.0),
            }
        );
        assert_eq!(
            a.snapshot(Path::new("/var/lib/kyb-maint/reports")),
            SnapshotConfig {
                metrics_url: "http://127.0.0.1:8080/metrics".into(),
                reports_dir: PathBuf::from("/var/lib/kyb-maint/reports"),
                timeout_ms: 1_500,
                max_body_bytes: 64 * 1024 * 1024,
                max_snapshot_bytes: 8 * 1024 * 1024,
                max_redirects: 2,
            }
        );
        let scrape = ScrapeConfig {
            url: "http://127.0.0.1:8080/metrics".into(),
            timeout_ms: 1_500,
            max_body_bytes: 64 * 1024 * 1024,
            max_redirects: 2,
        };
        assert_eq!(a.scrape(), scrape);
        let perf = a.performance(Path::new("/var/lib/kyb-maint/reports"), &PerfConfig::default());
        assert_eq!(
            perf,
            PerformanceTask {
                scrape,
                perf: PerfConfig::default(),
                reports_dir: PathBuf::from("/var/lib/kyb-maint/reports"),
                max_snapshot_bytes: 8 * 1024 * 1024,
            }
        );
        a.max_body_bytes = 100 * 1024 * 1024;
        assert_eq!(a.snapshot(Path::new("r")).max_body_bytes, 100 * 1024 * 1024);
        assert_eq!(a.scrape().max_body_bytes, 100 * 1024 * 1024);
    }
}

mod redis {
    use super::*;

    #[test]
    fn defaults_are_the_documented_numbers() {
        let r: RedisSection = read("");
        assert_eq!(r, RedisSection::default());
        assert_eq!((r.host.as_str(), r.port), ("localhost", 6379));
        assert_eq!(r.timeout_ms.get(), 5_000);
        assert!(r.username.is_none() && r.password_source().unwrap().is_none());
        assert!(!r.allow_insecure_password_file);
        r.validate().unwrap();
        let probe = r.probe().unwrap();
        assert_eq!((probe.host.as_str(), probe.port, probe.timeout_ms), ("localhost", 6379, 5_000));
        assert!(probe.password.is_none());
    }

    #[test]
    fn every_key_reads_and_round_trips() {
        let r: RedisSection = read(
            "host = \"10.0.0.5\"\nport = 6390\nusername = \"kyb\"\npassword_env = \"KYB_REDIS_PW\"\n\
             allow_insecure_password_file = true\ntimeout_ms = 1000\n",
        );
        assert_eq!((r.host.as_str(), r.port, r.username.as_deref()), ("10.0.0.5", 6390, Some("kyb")));
        assert_eq!(r.password_env.as_deref(), Some("KYB_REDIS_PW"));
        assert!(r.allow_insecure_password_file);
        assert_eq!(r.timeout_ms.get(), 1_000);
        assert_eq!(read::<RedisSection>(&toml::to_string(&r).unwrap()), r);
        let r: RedisSection = read("password = \"s3cret\"\npassword_file = \"pw\"\n");
        assert_eq!(r.password.as_ref().map(Secret::expose), Some("s3cret"));
        assert_eq!(r.password_file.as_deref(), Some(Path::new("pw")));
        assert!(!format!("{r:?}").contains("s3cret"), "Debug hides the password");
        assert!(!toml::to_string(&r).unwrap().contains("s3cret"), "so does a config written out");
    }

    #[test]
    fn validate_names_the_key() {
        assert_eq!(
            read::<RedisSection>("host = \"\"").validate(),
            Err(FieldError::new("host", "must not be empty"))
        );
        for two in ["password = \"a\"\npassword_env = \"B\"", "password_env = \"B\"\npassword_file = \"c\""] {
            let err = read::<RedisSection>(two).validate().unwrap_err();
            assert_eq!(
                err,
                FieldError::new("password", "give only one of password, password_env and password_file")
            );
        }
    }

    #[test]
    fn the_password_file_resolves_against_the_base() {
        let mut r: RedisSection = read("password_file = \"secrets/redis\"");
        r.resolve_paths(Path::new("/etc/kyb-maint"));
        assert_eq!(r.password_file.as_deref(), Some(Path::new("/etc/kyb-maint/secrets/redis")));
        let mut r: RedisSection = read("password_file = \"/run/secrets/redis\"");
        r.resolve_paths(Path::new("/etc/kyb-maint"));
        assert_eq!(r.password_file.as_deref(), Some(Path::new("/run/secrets/redis")));
        let mut r = RedisSection::default();
        r.resolve_paths(Path::new("/etc/kyb-maint"));
        assert_eq!(r, RedisSection::default());
    }

    #[test]
    fn the_probe_reads_the_password_from_its_source() {
        let r: RedisSection =
            read("host = \"cache\"\nport = 6390\nusername = \"kyb\"\npassword = \"inline\"");
        let probe = r.probe().unwrap();
        assert_eq!(
            (probe.host.as_str(), probe.port, probe.username.as_deref()),
            ("cache", 6390, Some("kyb"))
        );
        assert_eq!(probe.password.as_ref().map(Secret::expose), Some("inline"));

        let path = std::env::var("PATH").unwrap();
        let r: RedisSection = read("password_env = \"PATH\"");
        assert_eq!(r.probe().unwrap().password.unwrap().expose(), path);
        let r: RedisSection = read("password_env = \"KYB_SURELY_UNSET_VAR\"");
        assert_eq!(r.probe().unwrap_err().key, "password_env");

        let dir = tempfile::tempdir().unwrap();
        let file = password_file(dir.path(), "from-file\n", 0o600);
        let mut r: RedisSection = read("password_file = \"pw\"");
        r.resolve_paths(dir.path());
        assert_eq!(r.password_file.as_deref(), Some(file.as_path()));
        assert_eq!(r.probe().unwrap().password.unwrap().expose(), "from-file");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = r.probe().unwrap_err();
        assert!(err.key == "password_file" && err.message.contains("chmod 600"), "{err}");
        r.allow_insecure_password_file = true;
        assert_eq!(r.probe().unwrap().password.unwrap().expose(), "from-file");
    }
}

mod postgres {
    use super::*;

    #[test]
    fn the_probe_is_the_shared_section_with_its_password_read() {
        let p: PostgresSection = read(
            "host = \"db\"\nport = 5433\nuser = \"kyb\"\ndbname = \"platform\"\npassword = \"pw\"\ntimeout_ms = 1500",
        );
        let cfg = PostgresConfig::from_section(&p).unwrap();
        assert_eq!(
            (cfg.host.as_str(), cfg.port, cfg.user.as_str(), cfg.dbname.as_str(), cfg.timeout_ms),
            ("db", 5433, "kyb", "platform", 1_500)
        );
        assert_eq!(cfg.password.as_ref().map(Secret::expose), Some("pw"));
        assert_eq!(cfg.target(), p.target().unwrap());

        let p = PostgresSection::new("kyb", "platform");
        let cfg = PostgresConfig::from_section(&p).unwrap();
        assert_eq!((cfg.host.as_str(), cfg.port, cfg.timeout_ms), ("localhost", 5432, 5_000));
        assert!(cfg.password.is_none());

        let dir = tempfile::tempdir().unwrap();
        password_file(dir.path(), "open\n", 0o644);
        let mut p: PostgresSection = read("user = \"u\"\ndbname = \"d\"\npassword_file = \"pw\"");
        p.resolve_paths(dir.path());
        assert_eq!(PostgresConfig::from_section(&p).unwrap_err().key, "password_file");
    }
}

mod monitoring {
    use super::*;

    const ALL: &str = "prometheus_url = \"http://127.0.0.1:9090/\"\ngrafana_url = \"http://127.0.0.1:3000\"\n\
                       alertmanager_url = \"http://127.0.0.1:9093\"\n";

    #[test]
    fn defaults_are_the_documented_ones_and_probe_nothing() {
        let m: MonitoringSection = read("");
        assert_eq!(m, MonitoringSection::default());
        assert!(m.prometheus_url.is_none() && m.grafana_url.is_none() && m.alertmanager_url.is_none());
        assert_eq!(m.timeout_ms.get(), 5_000);
        assert!(!m.restart);
        assert_eq!(
            (m.prometheus_unit.as_str(), m.grafana_unit.as_str(), m.alertmanager_unit.as_str()),
            ("prometheus", "grafana-server", "alertmanager")
        );
        assert_eq!(m.systemctl, Path::new("systemctl"));
        m.validate().unwrap();
        assert_eq!(m.targets(), None);
    }

    #[test]
    fn every_key_reads_and_round_trips() {
        let m: MonitoringSection = read(&format!(
            "{ALL}timeout_ms = 1000\nrestart = true\nprometheus_unit = \"prom\"\ngrafana_unit = \"\"\n\
             alertmanager_unit = \"am\"\nsystemctl = \"/usr/bin/systemctl\"\n"
        ));
        assert_eq!(m.prometheus_url.as_deref(), Some("http://127.0.0.1:9090/"));
        assert_eq!(m.grafana_url.as_deref(), Some("http://127.0.0.1:3000"));
        assert_eq!(m.alertmanager_url.as_deref(), Some("http://127.0.0.1:9093"));
        assert_eq!((m.timeout_ms.get(), m.restart), (1_000, true));
        assert_eq!(
            (m.prometheus_unit.as_str(), m.grafana_unit.as_str(), m.alertmanager_unit.as_str()),
            ("prom", "", "am")
        );
        assert_eq!(m.systemctl, Path::new("/usr/bin/systemctl"));
        assert_eq!(read::<MonitoringSection>(&toml::to_string(&m).unwrap()), m);
        assert!(toml::from_str::<MonitoringSection>("loki_url = \"http://a\"").is_err());
    }

    #[test]
    fn validate_names_the_url_key() {
        for key in ["prometheus_url", "grafana_url", "alertmanager_url"] {
            let m: MonitoringSection =
                read(&format!("{ALL}\n").replace(&format!("{key} = \"http"), &format!("{key} = \"ftp")));
            let url = match key {
                "prometheus_url" => "ftp://127.0.0.1:9090",
                "grafana_url" => "ftp://127.0.0.1:3000",
                _ => "ftp://127.0.0.1:9093",
            };
            assert_eq!(m.validate(), Err(FieldError::new(key, url_error(url))), "{key}");
            assert!(m.validate().unwrap_err().message.contains("ftp"));
        }
        read::<MonitoringSection>(ALL).validate().unwrap();
    }

    #[test]
    fn the_targets_are_the_components_with_a_url() {
        let m: MonitoringSection =
            read(&format!("{ALL}timeout_ms = 1500\nrestart = true\ngrafana_unit = \"\"\n"));
        let cfg = m.targets().unwrap();
        assert_eq!(
            cfg,
            MonitoringConfig {
                targets: vec![
                    MonitorTarget {
                        component: Component::Prometheus,
                        base_url: "http://127.0.0.1:9090".into(),
                        unit: Some("prometheus".into()),
                    },
                    MonitorTarget {
                        component: Component::Grafana,
                        base_url: "http://127.0.0.1:3000".into(),
                        unit: None,
                    },
                    MonitorTarget {
                        component: Component::Alertmanager,
                        base_url: "http://127.0.0.1:9093".into(),
                        unit: Some("alertmanager".into()),
                    },
                ],
                timeout_ms: 1_500,
                max_redirects: 3,
                restart: true,
                systemctl: PathBuf::from("systemctl"),
            }
        );
        let m: MonitoringSection = read("grafana_url = \"http://g:3000\"");
        let targets = m.targets().unwrap().targets;
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].component, Component::Grafana);
    }
}

mod health {
    use super::*;

    const FULL: &str = "[app]\nbase_url = \"http://127.0.0.1:8080\"\n\
                        [postgres]\nuser = \"kyb\"\ndbname = \"platform\"\npassword = \"pg\"\n\
                        [redis]\nport = 6380\npassword_file = \"redis.pw\"\n";

    #[test]
    fn an_empty_table_probes_nothing() {
        let h: HealthSection = read("");
        assert_eq!(h, HealthSection::default());
        assert!(h.app.is_none() && h.postgres.is_none() && h.redis.is_none());
        h.validate().unwrap();
        assert_eq!(h.probes().unwrap(), HealthConfig { app: None, postgres: None, redis: None });
        assert!(toml::from_str::<HealthSection>("[system]\ncpu_sample_ms = 1").is_err());
    }

    #[test]
    fn each_section_given_becomes_its_probe() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("redis.pw"), "r3dis\n").unwrap();
        std::fs::set_permissions(dir.path().join("redis.pw"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        let mut h: HealthSection = read(FULL);
        h.resolve_paths(dir.path());
        assert_eq!(
            h.redis.as_ref().unwrap().password_file.as_deref(),
            Some(dir.path().join("redis.pw").as_path())
        );
        h.validate().unwrap();
        let probes = h.probes().unwrap();
        assert_eq!(probes.app, Some(AppSection::new("http://127.0.0.1:8080").probe()));
        let pg = probes.postgres.unwrap();
        assert_eq!((pg.user.as_str(), pg.dbname.as_str()), ("kyb", "platform"));
        assert_eq!(pg.password.unwrap().expose(), "pg");
        let redis = probes.redis.unwrap();
        assert_eq!(redis.port, 6380);
        assert_eq!(redis.password.unwrap().expose(), "r3dis");
    }

    #[test]
    fn errors_name_the_section_inside_the_table() {
        for (text, key) in [
            ("[app]\nbase_url = \"ftp://a\"", "app.base_url"),
            ("[postgres]\nhost = \"\"\nuser = \"u\"\ndbname = \"d\"", "postgres.host"),
            ("[redis]\npassword = \"a\"\npassword_env = \"B\"", "redis.password"),
        ] {
            assert_eq!(read::<HealthSection>(text).validate().unwrap_err().key, key, "{text}");
        }
        let h: HealthSection = read("[redis]\npassword_env = \"KYB_SURELY_UNSET_VAR\"");
        assert_eq!(h.probes().unwrap_err().key, "redis.password_env");
        let h: HealthSection =
            read("[postgres]\nuser = \"u\"\ndbname = \"d\"\npassword_env = \"KYB_SURELY_UNSET_VAR\"");
        assert_eq!(h.probes().unwrap_err().key, "postgres.password_env");
    }

    #[test]
    fn a_full_table_round_trips_without_its_secrets() {
        let h: HealthSection = read(FULL);
        let text = toml::to_string(&h).unwrap();
        assert!(!text.contains("\"pg\""), "{text}");
        let back: HealthSection = read(&text);
        assert_eq!(back.app, h.app);
        assert_eq!(back.redis, h.redis);
        assert_eq!(back.postgres.as_ref().map(|p| &p.user), h.postgres.as_ref().map(|p| &p.user));
    }
}
