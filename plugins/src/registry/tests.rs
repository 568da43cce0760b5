//! The registry's contract: one name per kind, documented plugins, errors that list what is
//! allowed, and every built-in plugin buildable through its factory.

use super::*;

fn decl(name: &'static str) -> PluginDecl {
    PluginDecl::new(name, "a test plugin", "none", vec![])
}

fn ce(_: &Params, _: &BuildContext) -> Result<Arc<dyn Loss>, RegistryError> {
    Ok(Arc::new(
        crate::losses::CrossEntropy::new().map_err(|e| RegistryError::build("x", e))?,
    ))
}

#[test]
fn registering_a_name_twice_is_an_error() {
    let mut r = builtin_registry();
    r.register(decl("mine"), Factory::Loss(ce)).unwrap();
    assert!(matches!(
        r.register(decl("mine"), Factory::Loss(ce)),
        Err(RegistryError::Duplicate { .. })
    ));
    // A built-in name cannot be taken over either.
    let err = r.register(decl("focal"), Factory::Loss(ce)).unwrap_err();
    assert!(
        err.to_string().contains("`focal` is registered twice"),
        "{err}"
    );
    // The same name for another kind is another plugin (`class-balanced` sampler and loss).
    assert!(r.names(Kind::Sampler).contains(&"class-balanced"));
    assert!(r.names(Kind::Loss).contains(&"class-balanced"));
}

#[test]
fn an_undocumented_plugin_is_refused() {
    let mut r = Registry::default();
    let mut d = decl("bare");
    d.paper = "";
    assert!(matches!(
        r.register(d, Factory::Loss(ce)),
        Err(RegistryError::Undocumented { .. })
    ));
}

#[test]
fn a_registered_loss_is_built_through_its_factory() {
    let mut r = builtin_registry();
    r.register(decl("mine"), Factory::Loss(ce)).unwrap();
    let ctx = BuildContext {
        class_counts: vec![5, 1],
        epochs: 1,
    };
    let p = r.validate(Kind::Loss, &PluginRef::named("mine")).unwrap();
    assert!(r.loss(&p, None, &ctx).is_ok());
    // It is a loss, not a sampler: asking for it under another kind lists that kind's names.
    let err = r
        .validate(Kind::Sampler, &PluginRef::named("mine"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown Sampler plugin `mine`") && err.contains("instance"));
}

#[test]
fn unknown_names_and_keys_list_what_is_allowed() {
    let r = builtin_registry();
    let err = r
        .validate(Kind::Loss, &PluginRef::named("focl"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("focal") && err.contains("ldam"), "{err}");
    let mut bad = PluginRef::named("focal");
    bad.params.insert("gama".into(), toml::Value::Float(2.0));
    let err = r.validate(Kind::Loss, &bad).unwrap_err().to_string();
    assert!(err.contains("gama") && err.contains("gamma"), "{err}");
    // An unknown mixer is an error, not some default mixer.
    let err = r
        .validate(Kind::Mixer, &PluginRef::named("mixp"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("mixup") && err.contains("remix"), "{err}");
}

#[test]
fn out_of_range_parameters_are_rejected_and_defaults_filled() {
    let r = builtin_registry();
    let mut bad = PluginRef::named("class-balanced");
    bad.params.insert("beta".into(), toml::Value::Float(1.5));
    let err = r.validate(Kind::Loss, &bad).unwrap_err().to_string();
    assert!(err.contains("class-balanced.beta"), "{err}");
    let ok = r.validate(Kind::Loss, &PluginRef::named("ldam")).unwrap();
    assert_eq!(ok.get("s"), 30.0);
    assert_eq!(ok.get("max_m"), 0.5);
}

/// Every built-in plugin builds from its defaults through the registry, as the kind it says.
#[test]
fn every_builtin_builds_from_its_defaults() {
    let r = builtin_registry();
    let ctx = BuildContext {
        class_counts: vec![50, 20, 8, 3],
        epochs: 10,
    };
    let mut built = 0;
    for info in r.describe() {
        let p = r.validated(info.kind, info.name, &[]).unwrap();
        let ok = match info.kind {
            Kind::Sampler => r.sampler(&p, &ctx).map(|_| ()),
            Kind::Loss => r.loss(&p, None, &ctx).map(|_| ()),
            Kind::LossSchedule => {
                let ce = r.validated(Kind::Loss, "ce", &[]).unwrap();
                r.loss(&ce, Some(&p), &ctx).map(|_| ())
            }
            Kind::PostHoc => r.posthoc(&p, &ctx).map(|s| assert_eq!(s.len(), 4)),
            Kind::Mixer => r.mixer(&p, &ctx).map(|_| ()),
            Kind::Classifier => r.classifier(&p).map(|_| ()),
            Kind::Stage2 => r.stage2(&p).map(|_| ()),
        };
        ok.unwrap_or_else(|e| panic!("{}: {e}", info.name));
        assert_eq!(info.family, info.kind.family());
        built += 1;
    }
    assert!(built >= 22, "only {built} plugins");
}

#[test]
fn an_extension_names_its_crate_and_cauda_plugins_name_none() {
    let mut r = builtin_registry();
    assert!(
        r.extensions().is_empty(),
        "cauda's own plugins have no origin"
    );
    r.register_extension("my-plugins 0.2.0", decl("mine"), Factory::Loss(ce))
        .unwrap();
    assert_eq!(r.origin(Kind::Loss, "mine"), Some("my-plugins 0.2.0"));
    assert_eq!(r.origin(Kind::Loss, "focal"), None);
    assert_eq!(r.origin(Kind::Loss, "absent"), None);
    assert_eq!(
        r.extensions().into_iter().collect::<Vec<_>>(),
        ["my-plugins 0.2.0"]
    );
    let listed = r.describe().into_iter().find(|p| p.name == "mine").unwrap();
    assert_eq!(listed.origin, Some("my-plugins 0.2.0"));
    // The rules of `register` hold for extensions too.
    assert!(matches!(
        r.register_extension("other 1.0.0", decl("focal"), Factory::Loss(ce)),
        Err(RegistryError::Duplicate { .. })
    ));
    // An origin is one `name version` label: run labels join them with ` + `.
    for bad in ["", " x 1.0", "a + b 1.0"] {
        let err = r
            .register_extension(bad, decl("other"), Factory::Loss(ce))
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::BadOrigin { .. }),
            "{bad:?}: {err}"
        );
    }
}
