"""engine.runtime.cuda_graphs: padded batch sizes, and graphed pieces that answer like eager ones (CUDA)."""
import pytest
import torch

from engine.runtime.cuda_graphs import GraphCache, bucket
from engine.runtime.device import to_device


def test_bucket_is_the_next_power_of_two():
    assert [bucket(n) for n in (1, 2, 3, 5, 64, 65, 1000)] == [1, 2, 4, 8, 64, 128, 1024]


@pytest.mark.gpu
def test_a_graph_replays_the_function_and_copies_its_outputs_out():
    weight = torch.randn(16, 8, device="cuda")

    def fn(x):
        h = x @ weight.T
        return h.relu(), h.sum(1)

    graphed = GraphCache(fn)
    x1, x2 = torch.randn(4, 8, device="cuda"), torch.randn(4, 8, device="cuda")
    first = graphed(x1)
    second = graphed(x2)  # replayed (same shape): a second replay must not overwrite what the caller kept
    for got, want in ((first, fn(x1)), (second, fn(x2))):
        torch.testing.assert_close(got[0], want[0])
        torch.testing.assert_close(got[1], want[1])
    assert len(graphed.graphs) == 1
    graphed(torch.randn(8, 8, device="cuda"))
    assert len(graphed.graphs) == 2  # one capture per input shape
    graphed.clear()
    assert graphed.graphs == {}


@pytest.mark.gpu
def test_cuda_graphs_give_the_eager_answers(smoke_image_run):
    """Graphed and eager cascades agree on every sample, at thetas captured once (the exit
    decision is outside the graph), for partial exits (padded buckets) and in the pooled stream."""
    from engine.runtime.cascade import Cascade, load_cascade

    store, run_id = smoke_image_run
    graphed, data, collate, _ = load_cascade(store, run_id, theta=0.5, device="cuda", cuda_graphs=True)
    eager = Cascade(graphed.model, theta=0.5, amp=graphed.amp, cuda_graphs=False)
    assert graphed.cuda_graphs and not eager.cuda_graphs
    batches = [to_device(collate([data.test[i] for i in range(s, min(s + 48, len(data.test)))])[0],
                         torch.device("cuda")) for s in range(0, len(data.test), 48)]
    for theta in (0.0, 0.5, 0.9, 1.0):
        graphed.theta = eager.theta = theta
        for x in batches:
            a, b = graphed(x), eager(x)
            assert torch.equal(a.exited, b.exited) and torch.equal(a.pred, b.pred)
            torch.testing.assert_close(a.logits, b.logits, rtol=1e-3, atol=1e-3)
        streamed = torch.cat([o.pred for o in graphed.stream(batches)])
        assert torch.equal(streamed, torch.cat([eager(x).pred for x in batches]))
    assert 0 < len(graphed._pieces["rest"].graphs) <= 8  # padded to powers of two
