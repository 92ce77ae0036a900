use std::sync::Arc;
use std::time::Duration;

use booster_runtime::*;

use crate::common::*;
use crate::record_errors::RejectBad;

/// Nine records in slices of three; records 0, 4 and 8 have separators.
fn separated_input() -> Vec<(Vec<u8>, Separators)> {
    let mut input: Vec<(Vec<u8>, Separators)> = records(9)
        .into_iter()
        .map(|r| (r, Separators::default()))
        .collect();
    input[0].1.before = Some(b"\r\n\r\n".to_vec());
    input[4].1.after = Some(b"\n  \n".to_vec());
    input[8].1.after = Some(Vec::new());
    input
}

async fn upload_separated(rt: &Runtime, job: JobId, input: &[(Vec<u8>, Separators)]) {
    let mut up = rt.upload(job).await.unwrap();
    for (i, (record, separators)) in input.iter().enumerate() {
        up.push_separated(record.clone(), Some(i as u64 + 1), separators.clone())
            .await
            .unwrap();
    }
    up.finish().await.unwrap();
}

fn download_separated(rt: &Runtime, job: JobId) -> Vec<(Vec<u8>, Separators)> {
    rt.download_separated(job)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separators_come_back_with_a_one_to_one_output_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 2)).await.unwrap();
    rt.register_sliced("echo", echo());
    let job = rt.submit(sliced("echo", 3)).await.unwrap();
    upload_separated(&rt, job, &separated_input()).await;
    let done = rt.wait(job).await.unwrap();
    assert_eq!(
        (done.records_in, done.records_out),
        (9, 9),
        "separators are not records"
    );
    assert_eq!(download_separated(&rt, job), separated_input());
    // A plain download is unchanged.
    assert_eq!(download(&rt, job, Category::Main), records(9));
    rt.shutdown(Duration::from_secs(5)).await.unwrap();

    let rt = Runtime::open(opts(dir.path(), 2)).await.unwrap();
    assert_eq!(download_separated(&rt, job), separated_input());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slice_whose_output_is_not_one_to_one_gets_no_separators() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 2)).await.unwrap();
    rt.register_sliced("check", Arc::new(RejectBad));
    let job = rt
        .submit(sliced("check", 3).with_collect_errors(true))
        .await
        .unwrap();
    let mut input = separated_input();
    input[3].0 = b"bad-3".to_vec();
    upload_separated(&rt, job, &input).await;
    rt.wait(job).await.unwrap();
    let mut expected = input.clone();
    expected.remove(3);
    // Slice 1 (records 3..6) lost a record: its separator (record 4's)
    // cannot be placed by index, so it is left out; slices 0 and 2 keep
    // theirs.
    expected[3].1 = Separators::default();
    assert_eq!(download_separated(&rt, job), expected);
}
