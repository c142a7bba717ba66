# tools/gdb/seekgrad.py — gdb pretty-printers for seekgrad: sg::Tensor, sg::TensorImpl, sg::Node.
#
#   (gdb) source tools/gdb/seekgrad.py
#   (gdb) print x
#   $1 = Tensor "x" (2, 3) f32 cpu [1, 2, 3, 4, 5, 6]  requires_grad: no  grad: none  leaf
#
# What a printer shows, read straight from the inferior's memory (no function in the program is
# called, so it also works on a core file and in frames where calls are impossible):
#   Tensor/TensorImpl  name, shape, dtype, device, strides + offset (only for a non-contiguous view
#                      or a non-zero offset), the first values in row-major order (read through
#                      storage->data + offset with the strides), requires_grad, whether .grad is
#                      present (and its shape), and grad_fn (the producing node's scope/op) or "leaf".
#   Node               #sequence, scope/op, number of inputs, output shape and dtype, output name,
#                      and "released" once backward() has freed it.
# Extra commands: `set seekgrad-values N` (how many values to show, default 8), the convenience
# functions `$grad(t)` (the TensorImpl of t's .grad) and `$grad_fn(t)` (t's Node), e.g.
#   (gdb) print $grad(w)        (gdb) print $grad_fn(y)        (gdb) print $grad_fn(y).inputs
#
# Written for the Debug build (-O0 -g) with libstdc++: it reads std::shared_ptr through _M_ptr,
# std::vector through _M_impl._M_start/_M_finish and std::string through _M_dataplus._M_p.
# What it is not: a way to change tensors; use `call` / `set var` for that.
import struct

import gdb
import gdb.printing

_FORMATS = {"f32": ("f", 4), "f64": ("d", 8), "i32": ("i", 4), "i64": ("q", 8)}
_MAX_DIMS = 16  # more dims than this means the memory is not (yet) a tensor


class _Values(gdb.Parameter):
    """How many values the seekgrad Tensor printer shows (default 8)."""

    set_doc = "Set how many values the seekgrad Tensor printer shows."
    show_doc = "Show how many values the seekgrad Tensor printer shows."

    def __init__(self):
        super().__init__("seekgrad-values", gdb.COMMAND_DATA, gdb.PARAM_ZUINTEGER)
        self.value = 8

    def get_set_string(self):
        return ""

    def get_show_string(self, svalue):
        return "The seekgrad Tensor printer shows %s values." % svalue


_values_param = _Values()


# ---- libstdc++ internals ----------------------------------------------------------------------

def _shared_ptr_get(sp):
    """The raw pointer inside a std::shared_ptr (0 when empty)."""
    return sp["_M_ptr"]


def _vector_items(vec, limit=_MAX_DIMS):
    """The elements of a std::vector, or None if it does not look like one."""
    start = vec["_M_impl"]["_M_start"]
    finish = vec["_M_impl"]["_M_finish"]
    n = int(finish - start) if int(start) else 0
    if n < 0 or n > limit:
        return None
    return [(start + i).dereference() for i in range(n)]


def _vector_size(vec):
    start = vec["_M_impl"]["_M_start"]
    return int(vec["_M_impl"]["_M_finish"] - start) if int(start) else 0


def _string(s):
    """A std::string's text (libstdc++ new ABI, with a fallback to gdb's own formatting)."""
    try:
        n = int(s["_M_string_length"])
        if n == 0:
            return ""
        return s["_M_dataplus"]["_M_p"].string(length=min(n, 200))
    except gdb.error:
        text = str(s)
        return text[1:-1] if text.startswith('"') and text.endswith('"') else text


def _enum_name(v):
    """sg::DType::f32 -> "f32", sg::Device::CPU -> "cpu"."""
    return str(v).split("::")[-1]


def _shape(vec):
    items = _vector_items(vec)
    return None if items is None else [int(d) for d in items]


def _shape_str(dims):
    return "(" + ", ".join(str(d) for d in dims) + ")"


def _contiguous_strides(shape):
    strides, acc = [0] * len(shape), 1
    for i in range(len(shape) - 1, -1, -1):
        strides[i] = acc
        acc *= shape[i]
    return strides


def _is_contiguous(shape, strides):
    """The same rule as Tensor::is_contiguous: size-1 dims may have any stride."""
    expected = 1
    for d, s in zip(reversed(shape), reversed(strides)):
        if d == 1:
            continue
        if s != expected:
            return False
        expected *= d
    return True


def _numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def _format_value(v, dtype):
    if dtype in ("i32", "i64"):
        return str(v)
    if v != v:
        return "nan"
    if v in (float("inf"), float("-inf")):
        return "inf" if v > 0 else "-inf"
    return "%.6g" % v


# ---- Tensor -------------------------------------------------------------------------------------

def _read_values(impl, shape, strides, offset, dtype, count):
    """The first `count` elements in row-major order, as strings (reads the inferior's memory)."""
    storage = _shared_ptr_get(impl["storage"])
    if not int(storage):
        return None, "no storage"
    data = int(storage.dereference()["data"])
    if not data:
        return None, "no data"
    fmt, size = _FORMATS[dtype]
    inferior = gdb.selected_inferior()
    out = []
    for flat in range(count):
        rem, off = flat, offset  # flat index -> multi-index -> element offset
        for d in range(len(shape) - 1, -1, -1):
            rem, i = divmod(rem, shape[d])
            off += i * strides[d]
        raw = inferior.read_memory(data + off * size, size)
        out.append(_format_value(struct.unpack("<" + fmt, bytes(raw))[0], dtype))
    return out, None


def _storage_pool(impl):
    """The MemoryPool a tensor's storage came from ("cpu", "cuda", "cuda_emu"), or None."""
    storage = _shared_ptr_get(impl["storage"])
    if not int(storage):
        return None
    try:
        return _enum_name(storage.dereference()["pool"])
    except gdb.error:
        return None


def _node_label(node):
    op, scope = _string(node["op"]), _string(node["scope"])
    return scope + "/" + op if scope else op


def tensor_impl_summary(impl):
    """One line describing a sg::TensorImpl value."""
    shape = _shape(impl["shape"])
    strides = _shape(impl["strides"])
    if shape is None or strides is None or len(shape) != len(strides) or any(d < 0 for d in shape):
        return "Tensor <not constructed yet, or corrupt>"
    dtype = _enum_name(impl["dtype"])
    device = _enum_name(impl["device"]).lower()
    offset = int(impl["offset"])
    name = _string(impl["name"])

    parts = ["Tensor"]
    if name:
        parts.append('"%s"' % name)
    parts += [_shape_str(shape), dtype, device]
    if not _is_contiguous(shape, strides):
        parts.append("strides " + _shape_str(strides))
    if offset:
        parts.append("offset %d" % offset)

    n = _numel(shape)
    limit = int(_values_param.value)
    if device != "cpu" and _storage_pool(impl) == "cuda_emu":
        parts[parts.index(device)] = device + " (emulated)"  # host memory (autograd/device.h): readable
        device = "cpu"
    if device != "cpu":
        parts.append("[values on %s]" % device)
    elif dtype not in _FORMATS:
        parts.append("[%s values]" % dtype)
    elif limit > 0:
        try:
            values, why = _read_values(impl, shape, strides, offset, dtype, min(n, limit))
        except gdb.MemoryError:
            values, why = None, "unreadable memory"
        if values is None:
            parts.append("[%s]" % why)
        else:
            more = ", ... (%d values)" % n if n > len(values) else ""
            parts.append("[" + ", ".join(values) + more + "]")

    line = " ".join(parts)
    line += "  requires_grad: " + ("yes" if bool(impl["requires_grad"]) else "no")
    grad = _shared_ptr_get(impl["grad"])
    if int(grad):
        gshape = _shape(grad.dereference()["shape"])
        line += "  grad: yes " + (_shape_str(gshape) if gshape is not None else "(?)")
    else:
        line += "  grad: none"
    node = _shared_ptr_get(impl["grad_fn"])
    line += ("  grad_fn: " + _node_label(node.dereference())) if int(node) else "  leaf"
    return line


class TensorImplPrinter:
    def __init__(self, val):
        self.val = val

    def to_string(self):
        try:
            return tensor_impl_summary(self.val)
        except (gdb.error, gdb.MemoryError, ValueError, KeyError) as e:
            return "Tensor <cannot read (not constructed yet?): %s>" % e


class TensorPrinter:
    def __init__(self, val):
        self.val = val

    def to_string(self):
        try:
            impl = _shared_ptr_get(self.val["impl_"])
            if not int(impl):
                return "Tensor <undefined>"
            return tensor_impl_summary(impl.dereference())
        except (gdb.error, gdb.MemoryError, ValueError, KeyError) as e:
            return "Tensor <cannot read (not constructed yet?): %s>" % e


# ---- Node ---------------------------------------------------------------------------------------

class NodePrinter:
    def __init__(self, val):
        self.val = val

    def to_string(self):
        try:
            n = self.val
            shape = _shape(n["out_shape"])
            n_inputs = _vector_size(n["inputs"])
            line = "Node #%d %s (%d input%s) -> %s %s" % (
                int(n["sequence"]), _node_label(n), n_inputs, "" if n_inputs == 1 else "s",
                _shape_str(shape) if shape is not None else "(?)", _enum_name(n["out_dtype"]))
            out_name = _string(n["out_name"])
            if out_name:
                line += ' "%s"' % out_name
            if not int(n["backward"]["_M_manager"]):  # an empty std::function
                line += "  released"
            n_hooks = _vector_size(n["hooks"])
            if n_hooks:
                line += "  hooks: %d" % n_hooks
            if bool(n["retain_grad"]):
                line += "  retain_grad"
            return line
        except (gdb.error, gdb.MemoryError, ValueError) as e:
            return "Node <cannot read (not constructed yet?): %s>" % e


# ---- $grad(t) / $grad_fn(t) ---------------------------------------------------------------------

def _impl_of(val):
    """The TensorImpl pointer behind a Tensor, TensorImpl, or pointer/reference to either."""
    t = val.type.strip_typedefs()
    if t.code == gdb.TYPE_CODE_REF or t.code == gdb.TYPE_CODE_RVALUE_REF:
        val = val.referenced_value()
        t = val.type.strip_typedefs()
    if t.code == gdb.TYPE_CODE_PTR:
        val = val.dereference()
        t = val.type.strip_typedefs()
    if t.unqualified().tag == "sg::Tensor":
        return _shared_ptr_get(val["impl_"])
    if t.unqualified().tag == "sg::TensorImpl":
        return val.address
    raise gdb.GdbError("expected a sg::Tensor or sg::TensorImpl, got %s" % val.type)


class _GradFunction(gdb.Function):
    """$grad(t): the TensorImpl holding t's .grad (print it to see the gradient's values)."""

    def __init__(self):
        super().__init__("grad")

    def invoke(self, t):
        impl = _impl_of(t)
        if not int(impl):
            raise gdb.GdbError("the tensor is undefined")
        grad = _shared_ptr_get(impl.dereference()["grad"])
        if not int(grad):
            raise gdb.GdbError("this tensor has no .grad (a non-leaf needs retain_grad())")
        return grad.dereference()


class _GradFnFunction(gdb.Function):
    """$grad_fn(t): the Node that produced t (print it; ->inputs lists its input tensors)."""

    def __init__(self):
        super().__init__("grad_fn")

    def invoke(self, t):
        impl = _impl_of(t)
        if not int(impl):
            raise gdb.GdbError("the tensor is undefined")
        node = _shared_ptr_get(impl.dereference()["grad_fn"])
        if not int(node):
            raise gdb.GdbError("this tensor is a leaf: no grad_fn")
        return node.dereference()


_GradFunction()
_GradFnFunction()


def build_pretty_printer():
    pp = gdb.printing.RegexpCollectionPrettyPrinter("seekgrad")
    pp.add_printer("Tensor", "^sg::Tensor$", TensorPrinter)
    pp.add_printer("TensorImpl", "^sg::TensorImpl$", TensorImplPrinter)
    pp.add_printer("Node", "^sg::Node$", NodePrinter)
    return pp


gdb.printing.register_pretty_printer(gdb.current_objfile(), build_pretty_printer(), replace=True)
