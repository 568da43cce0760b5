//! Checks the generated `cauda.v1` API: messages survive prost encoding (NaN per-class values
//! and oneofs included), both services' clients and servers exist, and the embedded descriptor
//! set describes the services as documented, with a comment on every element.

use std::collections::HashSet;

use cauda_proto::v1::{
    self, CheckpointChunk, CheckpointMeta, EpochMetrics, EvalMetrics, ReliabilityBin, RunEvent,
    RunState, StateChange, checkpoint_chunk, run_event,
};
use prost::Message;
use prost_types::FileDescriptorSet;

fn epoch_event() -> RunEvent {
    RunEvent {
        seq: 42,
        at_ms: 1_700_000_000_123,
        attempt: 2,
        event: Some(run_event::Event::Epoch(EpochMetrics {
            stage: 2,
            epoch: 31,
            train_loss: 0.75,
            lr: 1e-3,
            images_per_sec: 1234.5,
            eval: Some(EvalMetrics {
                test_top1: 0.6,
                many: Some(0.8),
                medium: None,
                few: Some(0.1),
                per_class: vec![0.9, f32::NAN, 0.25],
                val_top1: None,
                test_top5: Some(0.95),
                ece: Some(0.05),
                nll: Some(0.9),
                worst_class: Some(0.25),
                reliability: vec![ReliabilityBin {
                    count: 3,
                    accuracy: 0.5,
                    confidence: 0.6,
                }],
            }),
            raw_json: r#"{"stage":2,"epoch":31}"#.into(),
            attempt: 2,
            extra: [("grad_norm".to_string(), 3.5)].into(),
        })),
    }
}

#[test]
fn an_epoch_event_round_trips_through_prost_with_its_nan_class() {
    let sent = epoch_event();
    let got = RunEvent::decode(sent.encode_to_vec().as_slice()).expect("decodes");
    assert_eq!(
        (got.seq, got.at_ms, got.attempt),
        (42, 1_700_000_000_123, 2)
    );
    let Some(run_event::Event::Epoch(m)) = got.event else {
        panic!("expected an epoch event, got {:?}", got.event);
    };
    assert_eq!((m.stage, m.epoch, m.attempt), (2, 31, 2));
    assert_eq!((m.train_loss, m.lr, m.images_per_sec), (0.75, 1e-3, 1234.5));
    assert_eq!(m.raw_json, r#"{"stage":2,"epoch":31}"#);
    assert_eq!(m.extra.get("grad_norm"), Some(&3.5));
    let eval = m.eval.expect("eval present");
    assert_eq!(
        (
            eval.test_top1,
            eval.many,
            eval.medium,
            eval.few,
            eval.val_top1
        ),
        (0.6, Some(0.8), None, Some(0.1), None)
    );
    assert_eq!(
        cauda_proto::per_class_from_wire(&eval.per_class),
        vec![Some(0.9), None, Some(0.25)]
    );
}

#[test]
fn a_state_change_and_checkpoint_chunks_round_trip() {
    let sent = RunEvent {
        seq: 1,
        at_ms: 5,
        attempt: 0,
        event: Some(run_event::Event::State(StateChange {
            from: RunState::Queued as i32,
            to: RunState::Running as i32,
            reason: None,
            grants: vec![v1::Grant {
                device_id: "gpu:1".into(),
                share: 0.25,
                mem_mb: Some(4096),
            }],
        })),
    };
    assert_eq!(RunEvent::decode(sent.encode_to_vec().as_slice()), Ok(sent));

    let meta = CheckpointChunk {
        part: Some(checkpoint_chunk::Part::Meta(CheckpointMeta {
            run_id: 7,
            attempt: 1,
            epoch: 10,
            stage: 1,
            total_bytes: 3,
            sha256: "0".repeat(64),
        })),
    };
    let data = CheckpointChunk {
        part: Some(checkpoint_chunk::Part::Data(vec![1, 2, 3])),
    };
    for chunk in [meta, data] {
        assert_eq!(
            CheckpointChunk::decode(chunk.encode_to_vec().as_slice()),
            Ok(chunk)
        );
    }
    // A full data chunk stays under tonic's default 4 MiB message limit.
    let full = CheckpointChunk {
        part: Some(checkpoint_chunk::Part::Data(vec![
            0;
            cauda_proto::MAX_CHUNK_BYTES
        ])),
    };
    assert!(full.encoded_len() < 4 << 20);
}

/// Compile-time check: the servers wrap any implementation of their traits, and the clients
/// are built on a tonic channel. Never called.
#[allow(dead_code)]
fn services_have_servers_and_clients<C, W>(cauda: C, worker: W, channel: tonic::transport::Channel)
where
    C: v1::cauda_server::Cauda,
    W: v1::worker_server::Worker,
{
    let _ = v1::cauda_server::CaudaServer::new(cauda);
    let _ = v1::worker_server::WorkerServer::new(worker);
    let _ = v1::cauda_client::CaudaClient::new(channel.clone());
    let _ = v1::worker_client::WorkerClient::new(channel);
}

#[test]
fn service_names_are_versioned() {
    assert_eq!(v1::cauda_server::SERVICE_NAME, "cauda.v1.Cauda");
    assert_eq!(v1::worker_server::SERVICE_NAME, "cauda.v1.Worker");
}

fn descriptor_set() -> FileDescriptorSet {
    FileDescriptorSet::decode(cauda_proto::FILE_DESCRIPTOR_SET).expect("descriptor set decodes")
}

#[test]
fn the_descriptor_set_holds_both_services_with_their_streaming_shapes() {
    let fds = descriptor_set();
    let methods: Vec<(String, bool, bool)> = fds
        .file
        .iter()
        .flat_map(|f| &f.service)
        .flat_map(|s| {
            s.method.iter().map(move |m| {
                (
                    format!("{}.{}", s.name(), m.name()),
                    m.client_streaming(),
                    m.server_streaming(),
                )
            })
        })
        .collect();
    let expected = [
        ("Cauda.SubmitExperiment", false, false),
        ("Cauda.GetExperiment", false, false),
        ("Cauda.ListRuns", false, false),
        ("Cauda.GetRun", false, false),
        ("Cauda.CancelRun", false, false),
        ("Cauda.WatchRun", false, true),
        ("Cauda.GetMetrics", false, false),
        ("Cauda.ListPlugins", false, false),
        ("Cauda.ListDevices", false, false),
        ("Cauda.GetCheckpoint", false, true),
        ("Cauda.GetReport", false, false),
        ("Cauda.ExportRun", false, true),
        ("Cauda.WhoAmI", false, false),
        ("Cauda.DeleteRun", false, false),
        ("Worker.Register", false, false),
        ("Worker.Heartbeat", false, false),
        ("Worker.ReportEpoch", false, false),
        ("Worker.ReportEpochs", false, false),
        ("Worker.ReportLog", false, false),
        ("Worker.UploadCheckpoint", true, false),
        ("Worker.FetchCheckpoint", false, true),
        ("Worker.Finish", false, false),
    ];
    let expected: Vec<(String, bool, bool)> = expected
        .iter()
        .map(|&(n, c, s)| (n.to_string(), c, s))
        .collect();
    assert_eq!(methods, expected);
    assert!(fds.file.iter().all(|f| f.package() == "cauda.v1"));
}

/// Source-info paths (field numbers of descriptor.proto) of every element that must carry a
/// comment: messages (nested too), their fields and oneofs, enums and their values, services
/// and their methods.
fn documented_elements(file: &prost_types::FileDescriptorProto) -> Vec<(Vec<i32>, String)> {
    fn message(
        out: &mut Vec<(Vec<i32>, String)>,
        path: Vec<i32>,
        m: &prost_types::DescriptorProto,
    ) {
        out.push((path.clone(), m.name().to_string()));
        for (i, f) in m.field.iter().enumerate() {
            out.push((
                [path.as_slice(), &[2, i as i32]].concat(),
                format!("{}.{}", m.name(), f.name()),
            ));
        }
        // proto3 `optional` fields live in synthetic oneofs, which have no source text.
        let synthetic: HashSet<i32> = m
            .field
            .iter()
            .filter(|f| f.proto3_optional())
            .filter_map(|f| f.oneof_index)
            .collect();
        for (i, o) in m.oneof_decl.iter().enumerate() {
            if synthetic.contains(&(i as i32)) {
                continue;
            }
            out.push((
                [path.as_slice(), &[8, i as i32]].concat(),
                format!("{}.{}", m.name(), o.name()),
            ));
        }
        for (i, n) in m.nested_type.iter().enumerate() {
            // A `map<K, V>` field's entry message is synthesized, with no source text; the
            // map field itself carries the comment.
            if n.options.as_ref().is_some_and(|o| o.map_entry()) {
                continue;
            }
            message(out, [path.as_slice(), &[3, i as i32]].concat(), n);
        }
        for (i, e) in m.enum_type.iter().enumerate() {
            enumeration(out, [path.as_slice(), &[4, i as i32]].concat(), e);
        }
    }
    fn enumeration(
        out: &mut Vec<(Vec<i32>, String)>,
        path: Vec<i32>,
        e: &prost_types::EnumDescriptorProto,
    ) {
        out.push((path.clone(), e.name().to_string()));
        for (i, v) in e.value.iter().enumerate() {
            out.push((
                [path.as_slice(), &[2, i as i32]].concat(),
                v.name().to_string(),
            ));
        }
    }
    let mut out = Vec::new();
    for (i, m) in file.message_type.iter().enumerate() {
        message(&mut out, vec![4, i as i32], m);
    }
    for (i, e) in file.enum_type.iter().enumerate() {
        enumeration(&mut out, vec![5, i as i32], e);
    }
    for (i, s) in file.service.iter().enumerate() {
        out.push((vec![6, i as i32], s.name().to_string()));
        for (j, m) in s.method.iter().enumerate() {
            out.push((
                vec![6, i as i32, 2, j as i32],
                format!("{}.{}", s.name(), m.name()),
            ));
        }
    }
    out
}

#[test]
fn every_message_field_enum_value_and_rpc_has_a_comment() {
    let fds = descriptor_set();
    assert_eq!(fds.file.len(), 3);
    let mut undocumented = Vec::new();
    let mut checked = 0;
    for file in &fds.file {
        let info = file.source_code_info.as_ref().expect("source info kept");
        let commented: HashSet<&[i32]> = info
            .location
            .iter()
            .filter(|l| !l.leading_comments().trim().is_empty())
            .map(|l| l.path.as_slice())
            .collect();
        for (path, name) in documented_elements(file) {
            checked += 1;
            if !commented.contains(path.as_slice()) {
                undocumented.push(format!("{}: {name}", file.name()));
            }
        }
    }
    assert!(checked > 250, "only {checked} elements found");
    assert!(undocumented.is_empty(), "no comment on: {undocumented:#?}");
}
