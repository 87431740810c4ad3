//! Listing calls that ask a shim per container (Tasks.List, CRI ListContainers,
//! ListContainerStats, a pod's stats) ask many at once: one shim after another made an answer
//! grow with the node's container count (a Tasks.List of 500 was 500 round trips in a row), and
//! kubelet polls the CRI ones every few seconds.

use std::future::Future;

use futures_util::stream::{self, StreamExt};

/// How many calls run at once.
const AT_ONCE: usize = 64;

/// `f` of every item, up to [`AT_ONCE`] at a time, the results in the items' order.
pub async fn in_order<T, R, Fut>(items: Vec<T>, f: impl FnMut(T) -> Fut) -> Vec<R>
where
    Fut: Future<Output = R>,
{
    stream::iter(items).map(f).buffered(AT_ONCE).collect().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn results_keep_the_order_and_calls_overlap() {
        let started = std::time::Instant::now();
        // Later items finish first; 10 calls of 50 ms at once take ~50 ms, not 500.
        let out = in_order((0..10u64).collect(), |i| async move {
            tokio::time::sleep(Duration::from_millis(50 - i * 4)).await;
            i * 2
        })
        .await;
        assert_eq!(out, (0..10u64).map(|i| i * 2).collect::<Vec<_>>());
        assert!(
            started.elapsed() < Duration::from_millis(400),
            "{:?}",
            started.elapsed()
        );
    }
}
