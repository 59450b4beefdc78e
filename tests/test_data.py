"""actc.data: .npz files, directories of them and module:function sources, cut into batches,
checked against the model's feeds with one clear error each. No Paddle needed."""
import sys
import textwrap

import numpy as np
import pytest

from actc.data import Batch, Dataset, FeedSpec, feed_specs, open_dataset
from actc.errors import ActcError

IMAGE = FeedSpec("image", (-1, 1, 8, 8), "float32")


def images(n, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).random((n, 1, 8, 8)).astype(dtype)


def npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def error(source, feeds=(IMAGE,)) -> str:
    with pytest.raises(ActcError) as e:
        ds = Dataset(str(source), list(feeds))
        list(ds.batches(4))
    msg = str(e.value)
    assert "\n" not in msg
    return msg


# ------------------------------------------------------------------ npz file
def test_npz_batches_and_labels(tmp_path):
    x, y = images(10), np.arange(10)
    ds = Dataset(npz(tmp_path / "d.npz", image=x, label=y), [IMAGE])
    assert ds.has_labels and ds.num_samples() == 10
    batches = list(ds.batches(4))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert all(isinstance(b, Batch) and set(b.feed) == {"image"} for b in batches)
    np.testing.assert_array_equal(np.concatenate([b.feed["image"] for b in batches]), x)
    np.testing.assert_array_equal(np.concatenate([b.label for b in batches]), y)
    assert ds.num_batches(4, None) == 3
    assert ds.num_batches(4, 2) == 2
    assert ds.num_batches(4, 99) == 3


def test_batch_nums_and_start(tmp_path):
    x = images(10)
    ds = Dataset(npz(tmp_path / "d.npz", image=x), [IMAGE])
    assert not ds.has_labels
    two = list(ds.batches(3, batch_nums=2))
    assert [len(b) for b in two] == [3, 3] and two[0].label is None
    rest = list(ds.batches(3, start=2))
    assert [len(b) for b in rest] == [3, 1]
    np.testing.assert_array_equal(rest[0].feed["image"], x[6:9])
    assert list(ds.batches(3, start=5)) == []
    held = list(ds.batches(3, batch_nums=1, start=1))
    assert len(held) == 1
    np.testing.assert_array_equal(held[0].feed["image"], x[3:6])


def test_labels_key_plural(tmp_path):
    ds = Dataset(npz(tmp_path / "d.npz", image=images(5), labels=np.arange(5)), [IMAGE])
    assert ds.has_labels
    assert [b.label.tolist() for b in ds.batches(5)] == [[0, 1, 2, 3, 4]]


def test_float64_data_is_cast_to_the_feed_dtype(tmp_path):
    """np.random.rand gives float64; Paddle would reject it mid-run (a bug before)."""
    ds = Dataset(npz(tmp_path / "d.npz", image=images(4, dtype=np.float64)), [IMAGE])
    (b,) = ds.batches(4)
    assert b.feed["image"].dtype == np.float32


def test_dynamic_dims_accept_any_size(tmp_path):
    feed = FeedSpec("ids", (-1, -1), "int64")
    ds = Dataset(npz(tmp_path / "d.npz", ids=np.ones((3, 17), np.int32)), [feed])
    (b,) = ds.batches(8)
    assert b.feed["ids"].shape == (3, 17) and b.feed["ids"].dtype == np.int64


def test_two_feeds(tmp_path):
    feeds = [FeedSpec("a", (-1, 2), "float32"), FeedSpec("b", (-1, 3), "float32")]
    src = npz(tmp_path / "d.npz", a=np.zeros((4, 2), np.float32), b=np.ones((4, 3), np.float32))
    (b,) = Dataset(src, feeds).batches(4)
    assert set(b.feed) == {"a", "b"}


# ------------------------------------------------------------------ npz errors
def test_wrong_name_did_you_mean(tmp_path):
    msg = error(npz(tmp_path / "d.npz", imag=images(4)))
    assert "no array named 'image'" in msg and "did you mean 'imag'" in msg
    assert "arrays here: imag" in msg and str(tmp_path / "d.npz") in msg


def test_extra_array(tmp_path):
    msg = error(npz(tmp_path / "d.npz", image=images(4), mask=images(4)))
    assert "array 'mask' is not a feed of the model" in msg and "feeds: image" in msg


def test_different_lengths(tmp_path):
    feeds = [FeedSpec("a", (-1, 2), "float32"), FeedSpec("b", (-1, 2), "float32")]
    msg = error(npz(tmp_path / "d.npz", a=np.zeros((4, 2), np.float32),
                    b=np.zeros((5, 2), np.float32)), feeds)
    assert "different lengths [4, 5]" in msg


def test_empty_array(tmp_path):
    msg = error(npz(tmp_path / "d.npz", image=np.zeros((0, 1, 8, 8), np.float32)))
    assert "array 'image' is empty" in msg


def test_wrong_shape(tmp_path):
    msg = error(npz(tmp_path / "d.npz", image=np.zeros((4, 1, 9, 8), np.float32)))
    assert "shape [4, 1, 9, 8]" in msg and "[-1, 1, 8, 8]" in msg
    msg = error(npz(tmp_path / "e.npz", image=np.zeros((4, 64), np.float32)))
    assert "shape [4, 64]" in msg


def test_wrong_dtype_kind(tmp_path):
    msg = error(npz(tmp_path / "d.npz", image=np.zeros((4, 1, 8, 8), np.int64)))
    assert "array 'image' is int64 but the model feeds float32" in msg


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite(tmp_path, bad):
    x = images(4)
    x[2, 0, 3, 3] = bad
    assert "contains NaN or inf" in error(npz(tmp_path / "d.npz", image=x))


def test_scalar_array(tmp_path):
    """A 0-d array used to crash with 'len() of unsized object'."""
    msg = error(npz(tmp_path / "d.npz", image=np.float32(1.0)))
    assert "array 'image' is a scalar" in msg


def test_only_labels(tmp_path):
    assert "holds only labels" in error(npz(tmp_path / "d.npz", label=np.arange(4)))


def test_label_length_mismatch(tmp_path):
    msg = error(npz(tmp_path / "d.npz", image=images(4), label=np.arange(5)))
    assert "'label' has 5 rows but the inputs have 4" in msg


def test_not_an_npz(tmp_path):
    bad = tmp_path / "d.npz"
    bad.write_text("hello")
    msg = error(bad)
    assert msg.startswith(f"{bad}: error: cannot read data")


def test_pickled_object_arrays_are_refused(tmp_path):
    np.savez(tmp_path / "d.npz", image=np.array([{"a": 1}, None], dtype=object))
    assert "cannot read data" in error(tmp_path / "d.npz")


def test_missing_source(tmp_path):
    msg = error(tmp_path / "nope.npz")
    assert "no such data file or directory" in msg and "module:function" in msg


# ------------------------------------------------------------------ directory of npz
def test_directory_concatenates_in_name_order(tmp_path):
    x, y = images(7), np.arange(7)
    npz(tmp_path / "b.npz", image=x[3:], label=y[3:])
    npz(tmp_path / "a.npz", image=x[:3], label=y[:3])
    (tmp_path / "notes.txt").write_text("ignored")
    ds = Dataset(str(tmp_path), [IMAGE])
    assert ds.num_samples() == 7 and ds.has_labels
    (b,) = ds.batches(16)
    np.testing.assert_array_equal(b.feed["image"], x)
    np.testing.assert_array_equal(b.label, y)


def test_directory_labels_only_when_every_file_has_them(tmp_path):
    npz(tmp_path / "a.npz", image=images(3), label=np.arange(3))
    npz(tmp_path / "b.npz", image=images(2))
    ds = Dataset(str(tmp_path), [IMAGE])
    assert ds.num_samples() == 5 and not ds.has_labels


def test_directory_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no .npz files in this directory" in error(empty)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    npz(mixed / "a.npz", image=images(2))
    npz(mixed / "b.npz", img=images(2))
    assert "different array names" in error(mixed)
    shapes = tmp_path / "shapes"
    shapes.mkdir()
    npz(shapes / "a.npz", image=images(2))
    npz(shapes / "b.npz", image=np.zeros((2, 1, 4, 4), np.float32))
    msg = error(shapes)  # used to be numpy's concatenate ValueError (an internal error)
    assert "different sample shapes" in msg
    bad = tmp_path / "bad"
    bad.mkdir()
    npz(bad / "a.npz", image=images(2).astype(np.int32))
    assert "is int32 but the model feeds float32" in error(bad)


# ------------------------------------------------------------------ module:function
@pytest.fixture
def data_module(tmp_path, monkeypatch):
    """A package with data functions, importable as ``actc_test_data.gen:<fn>``."""
    pkg = tmp_path / "actc_test_data"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "gen.py").write_text(textwrap.dedent("""
        import numpy as np

        def batches():
            rng = np.random.default_rng(0)
            for i in range(5):
                yield {"image": rng.random((2, 1, 8, 8)), "label": np.full(2, i)}

        def no_label():
            yield {"image": np.zeros((3, 1, 8, 8), np.float32)}

        def lists():
            yield [np.zeros((3, 1, 8, 8), np.float32)]

        def wrong_name():
            yield {"img": np.zeros((3, 1, 8, 8), np.float32)}

        def nan_later():
            yield {"image": np.zeros((3, 1, 8, 8), np.float32)}
            yield {"image": np.full((3, 1, 8, 8), np.nan, np.float32)}

        def returns_none():
            return None

        def needs_arg(x):
            return []

        def raises():
            yield {"image": np.zeros((3, 1, 8, 8), np.float32)}
            raise RuntimeError("disk on fire")

        not_callable = 3
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "actc_test_data.gen"
    for name in [m for m in sys.modules if m.startswith("actc_test_data")]:
        del sys.modules[name]


def test_function_source(data_module):
    """Dotted module paths work (they were rejected as 'no such data file' before)."""
    ds = Dataset(f"{data_module}:batches", [IMAGE])
    assert ds.num_samples() is None
    assert ds.num_batches(32, None) is None and ds.num_batches(32, 3) == 3
    batches = list(ds.batches())
    assert len(batches) == 5
    assert all(b.feed["image"].dtype == np.float32 for b in batches)  # cast from float64
    assert [int(b.label[0]) for b in batches] == [0, 1, 2, 3, 4]
    assert [int(b.label[0]) for b in ds.batches(batch_nums=2, start=1)] == [1, 2]
    # The function is called again for each pass over the data.
    assert len(list(ds.batches())) == 5
    (b,) = Dataset(f"{data_module}:no_label", [IMAGE]).batches()
    assert b.label is None


@pytest.mark.parametrize("fn, expected", [
    ("lists", "yielded list, expected a dict"),
    ("wrong_name", "no array named 'image'"),
    ("nan_later", "contains NaN or inf"),
    ("returns_none", "returned NoneType, expected an iterable"),
    ("needs_arg", "calling the data function failed: TypeError"),
    ("raises", "the data function failed: RuntimeError: disk on fire"),
])
def test_function_errors(data_module, fn, expected):
    assert expected in error(f"{data_module}:{fn}")


def test_function_import_errors(data_module):
    assert "cannot import data module 'actc_no_such_mod'" in error("actc_no_such_mod:f")
    assert f"module '{data_module}' has no function 'nope'" in error(f"{data_module}:nope")
    assert "has no function 'not_callable'" in error(f"{data_module}:not_callable")


# ------------------------------------------------------------------ feeds from a real program
def test_open_dataset_with_the_example(example_dir):
    from actc.io.model import load_model

    program, _ = load_model(example_dir)
    (spec,) = feed_specs(program)
    assert spec.name == "image" and spec.dtype == "float32" and list(spec.shape[1:]) == [1, 8, 8]
    ds = open_dataset(example_dir / "calib.npz", program)
    assert ds.num_samples() == 500 and ds.has_labels
    assert ds.num_batches(32, None) == 16
