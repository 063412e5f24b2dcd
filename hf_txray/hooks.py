"""One instrumentation layer: forward hooks on neuron sites that read, keep or edit activations.

Everything in hf_txray that looks inside a model goes through :class:`Trace` (the shape of baukit's ``Trace`` /
``TraceDict``): profiling (:class:`~hf_txray.sites.WinnerRecorder`), pruning masks
(:func:`~hf_txray.pruning.mask_neurons`), ablation fills (:func:`~hf_txray.probing.ablate`), activation extraction
(:func:`~hf_txray.probing.extract_activations`) and attribution (:func:`~hf_txray.probing.neuron_attributions`).

A trace hooks each site (:class:`~hf_txray.sites.Site`, from :func:`~hf_txray.sites.find_sites`) where its neurons
are: a forward pre-hook for ``capture="input"`` (the input of an MLP down projection), a forward hook for
``"output"`` (a block's output), a pre-hook with keyword arguments for fused mixture-of-experts modules
(``"experts"``, read only). At every call it

1. applies the edit of the site's layer, if any (a :class:`Fill`: 0 masks a neuron, a mean ablates it; or any
   function of the tensor), out of place, so parameters never change; an edit that returns no tensor, or one of
   another shape, is refused at that call, naming the site;
2. hands the (edited) tensor to `read` and, with ``retain=True``, keeps it (``trace[layer]``);
3. refuses a module that fires a second time before :meth:`Trace.reset` (``once=True``): a module reused across
   layers or calls (ALBERT's shared layers) would mix layers. A trace given its model (:func:`trace` does) tells the
   model's forward passes apart: one that only edits starts each pass afresh (an intervention over many batches, or
   ``generate()``), one that reads or keeps counts across passes until :meth:`Trace.reset`, so that what it holds
   is one pass's.

4. sees, when it reads or keeps, only the calls of the thread that attached it: two runs on one model in two
   threads (a Gradio app's worker threads, a ``ThreadPoolExecutor`` profiling several corpora) each read their own
   forward passes. Hooks are the module's, for every thread, so without this each run's hooks counted the other's
   calls too, and both failed as a module "reused across layers" (helper 387). A trace's edits (a pruning mask, an
   ablation, the ``edit`` of a trace that also reads) act on every thread's forward passes: those of
   ``DataParallel``'s replicas run in threads of their own, and an edit is a change of the model.

Leaving the ``with`` block (or :meth:`Trace.remove`) removes every handle, also when the block raised.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence, Union

import numpy as np
import torch
from torch import nn

from .errors import ConfigurationError, ModelError
from .moe import ExpertsLayout, unskipped
from .indices import whole_numbers
from .metrics import as_floats


@dataclass
class Site:
    """One hooked layer (also ``hf_txray.sites.Site``; defined here, beside the traces that take it, so that the
    annotations of :func:`trace` resolve at runtime: ``typing.get_type_hints``).

    Args:
        layer (`int`): index of the block in the model (0-based), used to match neurons across stages.
        name (`str`): the hooked module's qualified name.
        module (`nn.Module`): the hooked module.
        width (`int`): number of neurons.
        capture (`str`): ``"input"`` (forward pre-hook, the module's first argument), ``"output"``, or
            ``"experts"`` (a fused experts module: the chosen experts' intermediates, see :mod:`hf_txray.moe`).
        experts (`ExpertsLayout`, *optional*): the numbering of a mixture-of-experts layer.
    """

    layer: int
    name: str
    module: nn.Module
    width: int
    capture: str
    experts: ExpertsLayout | None = None


class Fill:
    """An edit that sets some neurons of the captured tensor (last dimension) to fixed values, out of place.

    Args:
        indices (`list[int]`): the neurons.
        values (`float`, array or tensor of shape ``(len(indices),)``, *optional*): their new values (a tensor of any
            dtype or device, e.g. means of kept activations); None sets exact zeros (a mask).

    Raises:
        ConfigurationError: `indices` are not whole numbers, or `values` are not numbers, neither one value nor one per
            index.

    Example:
        ```python
        >>> Fill([17, 42])                       # mask: the neurons output 0
        >>> Fill([17, 42], values=[0.3, -0.1])   # e.g. their mean activations
        ```
    """

    def __init__(self, indices: Sequence[int], values: float | Sequence[float] | np.ndarray | torch.Tensor | None = None):
        # on the CPU whatever default device the caller set (moved where the activations are, at use): under a
        # `with torch.device("meta")` they were meta tensors and masking failed on .item() (helper 384)
        self.indices = torch.as_tensor(whole_numbers(indices, "Fill's neuron indices"), device="cpu")
        self.values = None
        if values is not None:
            if isinstance(values, torch.Tensor):  # means of kept activations: bfloat16, on a GPU, or needing grad
                values = values.detach().cpu().double()
            # cast to the activations' dtype at use (checked there); "x" failed in numpy's float(), True was 1.0
            array = as_floats(values, "Fill's values", "one number or one per neuron")
            if array.ndim > 1 or (array.ndim == 1 and len(array) != len(self.indices)):
                raise ConfigurationError(f"A Fill of {len(self.indices)} neurons needs one value or "
                                         f"{len(self.indices)} values, got shape {array.shape}.")
            self.values = torch.as_tensor(np.broadcast_to(array, (len(self.indices),)).copy(), device="cpu")
            _refuse_conflicting_values(self.indices, self.values)
        # Index and value tensors moved once per (device, dtype) the activations arrive on.
        self._on: dict[tuple, tuple[torch.Tensor, torch.Tensor | None]] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.indices) == 0:
            return x
        key = (x.device, x.dtype)
        cached = self._on.get(key)
        if cached is None:
            values = None if self.values is None else self.values.to(x.device, x.dtype)
            if values is not None and bool((torch.isfinite(self.values) & ~torch.isfinite(values.cpu())).any()):
                raise ConfigurationError(  # 1e6 in float16 is inf: the neuron would output inf, not the value set
                    f"{self!r}: a value does not fit the activations' {x.dtype} (it becomes inf). Use values within "
                    f"its range ({torch.finfo(x.dtype).max:.4g}) or run the model in float32.")
            cached = self._on[key] = (self.indices.to(x.device), values)
        index, values = cached
        if values is None:
            return x.index_fill(-1, index, 0)
        x = x.clone()
        x[..., index] = values
        return x

    def __repr__(self) -> str:
        return f"Fill({self.indices.tolist()}, values={'0' if self.values is None else self.values.tolist()})"


def _refuse_conflicting_values(indices: torch.Tensor, values: torch.Tensor) -> None:
    """A neuron named twice with two values: which one an indexed assignment keeps is unspecified (the last on a
    CPU, either on a GPU), so the value set would depend on the device."""
    first: dict[int, float] = {}
    for index, value in zip(indices.tolist(), values.tolist()):
        if first.setdefault(index, value) != value and not (np.isnan(value) and np.isnan(first[index])):
            raise ConfigurationError(f"Fill names neuron {index} twice, with values {first[index]} and {value}: give "
                                     "each neuron one value.")


Edit = Union[Fill, Callable[[torch.Tensor], torch.Tensor]]


@dataclass
class ExpertsCall:
    """What a trace reads at a fused mixture-of-experts site (see :mod:`hf_txray.moe`).

    Args:
        hidden (`torch.Tensor`): the tokens routed into the experts, ``(tokens, hidden)`` or ``(batch, seq, hidden)``.
        top_k_index (`torch.Tensor`): the experts the router chose per token.
        shared (`torch.Tensor`, *optional*): the input of the layer's shared expert(s) in the same forward pass.
    """

    hidden: torch.Tensor
    top_k_index: torch.Tensor
    shared: torch.Tensor | None = None


class Trace:
    """Hooks on neuron sites that read, keep or edit their activations (see the module docstring).

    Args:
        sites (`list[Site]`): where to hook, e.g. ``find_sites(model, "mlp")``.
        read (`callable(slot, tensor)`, *optional*): called at every call of a site with the site's index in
            `sites` and its (edited) activations, or an :class:`ExpertsCall` at an ``"experts"`` site.
        edit (`dict[int, Edit]`, *optional*): per layer (``Site.layer``), a :class:`Fill` or a function returning the
            new activations (same shape).
        retain (`bool`, *optional*, defaults to `False`): keep each site's last (edited, detached) activations,
            read with ``trace[layer]``.
        once (`bool`, *optional*, defaults to `True`): refuse a site that fires again before :meth:`reset`. Turn off
            for edits that stay on across forward passes (pruning masks).
        prepend (`bool`, *optional*, defaults to `False`): register before the module's other hooks, so that hooks
            added later (or earlier) see the edited activations.
        model (`nn.Module`, *optional*): the model the sites belong to. Its forward passes are then told apart: a
            trace that neither reads nor keeps (edits only) counts `once` per pass, with no :meth:`reset` between
            them, and a second call in a new pass of a reading trace is refused with a message that says so.

    Raises:
        ConfigurationError: an edit names a layer that no site has, or is not callable; two sites share a layer
            while `edit` or `retain` address sites by layer; at a call, an edit returns something other than a
            tensor of the activations' shape.
        ModelError: an edit on a mixture-of-experts site (its units have no tensor to edit); at a call, with `once`,
            a site that runs again before :meth:`reset` (a module the model runs twice in one forward pass, or, for
            a trace that reads or keeps, a second forward pass without ``t.reset()``), or a site called without a
            positional input.
    """

    def __init__(self, sites: Sequence[Site], *, read: Callable[[int, Any], None] | None = None,
                 edit: Mapping[int, Edit] | None = None, retain: bool = False, once: bool = True,
                 prepend: bool = False, model: nn.Module | None = None):
        self.sites = list(sites)
        self.read, self.retain, self.once, self.prepend, self.model = read, retain, once, prepend, model
        if edit or retain:
            _refuse_shared_layers(self.sites)
        self.edits = self._edits_by_slot(edit or {})
        self.enabled = True
        self.passes = 0  # forward passes of `model` begun while attached
        self._thread: int | None = None  # the thread whose calls a reading trace sees (the one that attached it)
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._entered = False  # inside this trace's own `with` block
        self.reset()

    def _edits_by_slot(self, edit: Mapping[int, Edit]) -> list[Edit | None]:
        slots = {site.layer: slot for slot, site in enumerate(self.sites)}
        out: list[Edit | None] = [None] * len(self.sites)
        for layer, change in edit.items():
            if layer not in slots:
                raise ConfigurationError(f"An edit names layer {layer}, which is not traced: {sorted(slots)}.")
            if not callable(change):
                raise ConfigurationError(f"The edit of layer {layer} must be a Fill or a function, got {change!r}.")
            site = self.sites[slots[layer]]
            if site.capture == "experts":
                raise ModelError(
                    f"Editing mixture-of-experts units ({site.name}) is not supported: they live "
                    "inside fused experts, with no per-unit tensor to edit.")
            if isinstance(change, Fill) and len(change.indices) and not (
                    0 <= int(change.indices.min()) and int(change.indices.max()) < site.width):
                raise ConfigurationError(f"The Fill of layer {layer} names neurons {change.indices.tolist()}, but "
                                         f"{site.name} has {site.width} (0 to {site.width - 1}).")
            out[slots[layer]] = change
        return out

    # ----- life cycle ---------------------------------------------------------------------------------------------
    def attach(self) -> "Trace":
        """Register the hooks (idempotent)."""
        if self._handles:
            return self
        self._thread = threading.get_ident() if self.reads else None
        try:
            for slot, site in enumerate(self.sites):
                self._handles.extend(self._register(slot, site))
            for runs in _pass_modules(self.model):  # first among their pre-hooks: a pass begins before anything runs
                self._handles.append(runs.register_forward_pre_hook(self._pass_hook, prepend=True))
        except BaseException:
            self.remove()
            raise
        return self

    def _register(self, slot: int, site: Site) -> list[torch.utils.hooks.RemovableHandle]:
        if site.capture == "input":
            return [site.module.register_forward_pre_hook(self._input_hook(slot), prepend=self.prepend)]
        if site.capture == "output":
            return [site.module.register_forward_hook(self._output_hook(slot), prepend=self.prepend)]
        if site.capture == "experts":
            handles = [site.module.register_forward_pre_hook(self._experts_hook(slot), with_kwargs=True,
                                                             prepend=self.prepend)]
            shared = site.experts.shared if site.experts is not None else None
            if shared is not None:  # the shared expert's intermediate joins the routed ones', whichever runs first
                handles.append(shared.register_forward_pre_hook(self._shared_hook(slot), prepend=self.prepend))
            return handles
        raise ConfigurationError(f"Unknown capture {site.capture!r} of site {site.name!r}: input, output or experts.")

    def remove(self) -> None:
        """Remove every hook (idempotent); the model computes exactly as before they were added."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    @property
    def active(self) -> bool:
        return bool(self._handles)

    def __enter__(self) -> "Trace":
        # The inner block's exit would remove the hooks the outer block still runs under (its edits silently off).
        if self._entered:
            raise ConfigurationError(
                "This Trace is already entered (`with t:` inside `with t:`): leaving the inner block would remove "
                "the hooks of the outer one. Use the outer block, or a second trace(...) for other edits or reads.")
        self.reset()  # a block starts afresh: what an earlier block counted and kept is not this one's
        self.attach()
        self._entered = True
        return self

    def __exit__(self, *exc: Any) -> None:
        self._entered = False
        self.remove()

    # ----- per forward pass ---------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Start a new forward pass: forget the calls counted and the activations kept."""
        self.calls = [0] * len(self.sites)
        self._call_pass = [0] * len(self.sites)  # the value of `passes` at each site's last call
        self.outputs: list[Any] = [None] * len(self.sites)
        self._elsewhere = [0] * len(self.sites)  # calls of other threads, which a reading trace does not read
        self._shared: list[torch.Tensor | None] = [None] * len(self.sites)  # shared expert ran, routed not yet
        # routed experts ran, shared not yet: the call and its tensors' version counters
        self._routed: list[tuple[ExpertsCall, int, int] | None] = [None] * len(self.sites)

    def missing(self) -> list[Site]:
        """The sites that did not fire since the last :meth:`reset` (a trace that neither reads, keeps nor checks
        `once` counts no calls: every site of it is listed)."""
        return [site for site, calls in zip(self.sites, self.calls) if calls == 0]

    def __getitem__(self, layer: int) -> Any:
        """The kept activations of the site of `layer` (``retain=True``), None if it has not fired.

        Raises:
            ModelError: the site ran only in other threads than the one that attached the trace (a
                ``DataParallel``'s replicas), whose calls a reading trace does not read.
        """
        for slot, site in enumerate(self.sites):
            if site.layer == layer:
                if self.outputs[slot] is None and self.calls[slot] == 0 and self._elsewhere[slot]:
                    raise ModelError(
                        f"{site.name!r} ran only in other threads than the one that attached this trace (e.g. the "
                        "replicas of a DataParallel, or a forward pass handed to a thread pool): a trace reads the "
                        "forward passes of its own thread only. Run the model inside the wrapper (model.module) or "
                        "run the forward pass in the thread that entered the trace.")
                return self.outputs[slot]
        raise KeyError(f"Layer {layer} is not traced: {[s.layer for s in self.sites]}.")

    @property
    def reads(self) -> bool:
        """Whether the trace hands on or keeps what it sees (`read`, `retain`): what the `once` check protects
        across forward passes."""
        return self.read is not None or self.retain

    def _sees(self) -> bool:
        """Whether the hooks act on the call now running: on, and (for a trace that reads or keeps) of the thread
        that attached the trace, or gradient checkpointing's recomputation of a block (autograd may run it in a
        thread of its own, and the edits must be the same)."""
        return self.enabled and (self._own_thread() or _in_backward())

    def _own_thread(self) -> bool:
        """Whether the call now running is one this trace reads: any thread's for a trace that only edits, else
        the attaching thread's."""
        return self._thread is None or threading.get_ident() == self._thread

    def _edits_call(self, slot: int) -> bool:
        """Whether the hook of `slot` acts on the call now running: one the trace sees, or, where the site has an
        edit, any thread's call (``DataParallel``'s replicas run in threads of their own: their forward passes
        are edited alike, and not read). Another thread's call is counted apart (:meth:`__getitem__` names it)."""
        if self._sees():
            return True
        if not self.enabled:
            return False
        self._elsewhere[slot] += 1
        return self.edits[slot] is not None

    def _pass_hook(self, module: nn.Module, args: tuple) -> None:
        if not self._sees():
            return
        self.passes += 1
        if not self.reads:  # an edit-only trace keeps nothing across passes: each pass starts afresh
            self.reset()

    def _visit(self, slot: int, value: Any) -> Any:
        """Count the call, edit, read and keep; returns the edited tensor, or None when nothing was edited."""
        edit = self.edits[slot]
        if not (self.reads or self.once):
            # An edit kept on across calls (a pruning mask, an ablation) edits every call alike, its own thread's,
            # another's or a recomputation's, and keeps no count: under torch.compile, asking autograd whether it
            # is in a backward pass broke the graph at every hooked module, and a count (guarded by value) compiled
            # the model again at every forward pass (helper 436).
            return self._edited(slot, edit, value) if edit is not None else None
        # gradient checkpointing runs the block again to rebuild it (the same call), or another thread's call
        # (a DataParallel replica's) of a trace that reads: edited alike, neither counted nor read
        if _in_backward() or not self._own_thread():
            return self._edited(slot, edit, value) if edit is not None else None
        self.calls[slot] += 1
        if self.once and self.calls[slot] > 1:
            self._refuse_second_call(slot)
        self._call_pass[slot] = self.passes
        edited = self._edited(slot, edit, value) if edit is not None else None
        value = value if edited is None else edited
        if self.read is not None:
            self.read(slot, value)
        if self.retain:
            self.outputs[slot] = value.detach() if isinstance(value, torch.Tensor) else value
        return edited

    def _refuse_second_call(self, slot: int) -> None:
        name = self.sites[slot].name
        if self.model is not None and self._call_pass[slot] != self.passes:
            # A new forward pass of the model began since the site's last call: passes, not a shared module.
            raise ModelError(
                f"{name!r} ran again in a new forward pass of the model. A trace that reads (read=, retain=True) "
                "counts one call per site across every pass since the trace started or since the last `t.reset()`, "
                "so that what it reads and keeps is one pass's: call `t.reset()` between the passes you read, or "
                "pass once=False where no reset fits between them (generate() runs one pass per new token; "
                "t[layer] then holds the last call's activations).")
        raise ModelError(
            f"{name!r} ran more than once since the trace started or since the last `t.reset()` (the count spans "
            "forward passes). Within one forward pass, it is a module reused across layers or calls: hf_txray hooks "
            "one call per site, so pass `module_pattern` naming modules that run once per forward pass; models that "
            "reuse one layer for every block (ALBERT) are not supported. Running the model (or a part of it) twice "
            "inside one `with hf_txray.trace(...) as t:` block needs `t.reset()` between the passes, or once=False "
            "(each call then replaces what the trace keeps).")

    def _edited(self, slot: int, edit: Edit, value: torch.Tensor) -> torch.Tensor:
        """`edit` applied to `value`, refused unless it is a tensor of the same shape: a function without `return`
        gives None (it would silently edit nothing), and another shape fails deep inside the model as a shape
        mismatch naming no site."""
        edited = edit(value)
        if isinstance(edited, torch.Tensor) and (edited.shape, edited.dtype, edited.device) == (
                value.shape, value.dtype, value.device):
            return edited
        site = self.sites[slot]
        what = f"The edit function {getattr(edit, '__qualname__', None) or repr(edit)} of layer {site.layer}"
        if edited is None:
            raise ConfigurationError(f"{what} returned None: return the edited tensor (`return 2 * x`, not "
                                     "`x = 2 * x`).")
        if not isinstance(edited, torch.Tensor):
            raise ConfigurationError(f"{what} returned a {type(edited).__name__}: return the edited activations as a "
                                     f"torch.Tensor of their shape {tuple(value.shape)}.")
        if edited.shape != value.shape:
            raise ConfigurationError(
                f"{what} returned shape {tuple(edited.shape)}, but the {site.capture} of {site.name!r} it edits has "
                f"shape {tuple(value.shape)}: return a tensor of that shape (set neurons, don't drop or add them; to "
                "remove neurons, prune with mode='remove').")
        raise ConfigurationError(  # helper 157: x.double() failed deep in the model, naming no site
            f"{what} returned a {edited.dtype} tensor on {edited.device}, but the {site.capture} of {site.name!r} it "
            f"edits is {value.dtype} on {value.device}: return it in that dtype and on that device (e.g. "
            "`.to(x.dtype)`).")

    def _input_hook(self, slot: int):
        def hook(module: nn.Module, args: tuple) -> tuple | None:
            if not self._edits_call(slot):
                return None
            if not args:
                raise ModelError(f"{self.sites[slot].name!r} was called without a positional input: hf_txray reads "
                                 "and edits a site's first positional argument.")
            edited = self._visit(slot, args[0])
            return None if edited is None else (edited,) + tuple(args[1:])

        return hook

    def _output_hook(self, slot: int):
        def hook(module: nn.Module, args: tuple, output: Any) -> Any:
            if not self._edits_call(slot):
                return None
            first = output[0] if isinstance(output, (tuple, list)) else output
            edited = self._visit(slot, first)
            if edited is None:
                return None
            if isinstance(output, tuple):
                return (edited,) + output[1:]
            return [edited] + list(output[1:]) if isinstance(output, list) else edited

        return hook

    def waiting_for_shared(self) -> list[Site]:
        """The mixture-of-experts sites whose routed experts ran since the last :meth:`reset` but whose shared
        expert has not (yet): their call is read when it runs."""
        return [site for site, routed in zip(self.sites, self._routed) if routed is not None]

    def _experts_hook(self, slot: int):
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            if not self._sees():
                return
            hidden = args[0] if args else kwargs["hidden_states"]
            top_k_index = args[1] if len(args) > 1 else kwargs["top_k_index"]
            layout = self.sites[slot].experts
            if layout is not None and layout.skip_class:  # a skip choice reaches no expert: no units compete
                weights = args[2] if len(args) > 2 else kwargs.get("top_k_weights")
                top_k_index = unskipped(top_k_index, weights)
            call = ExpertsCall(hidden.detach(), top_k_index.detach(), self._shared[slot])
            self._shared[slot] = None
            if call.shared is None and layout is not None and layout.shared is not None:
                # The shared expert runs after the routed ones (DeepSeek-V3, GraniteMoeShared): read the call
                # when it has run, from the routed experts' input as it was (checked by its version counter).
                self._routed[slot] = (call, call.hidden._version, call.top_k_index._version)
                return
            self._visit(slot, call)

        return hook

    def _shared_hook(self, slot: int):
        def hook(module: nn.Module, args: tuple) -> None:
            if not self._sees():
                return
            waiting, self._routed[slot] = self._routed[slot], None
            if waiting is None:  # it runs before the routed experts (Qwen2-MoE): keep its input for them
                self._shared[slot] = args[0].detach()
                return
            call, *versions = waiting
            if versions != [call.hidden._version, call.top_k_index._version]:
                raise ModelError(
                    f"The routed experts' input of {self.sites[slot].name!r} was changed in place before its shared "
                    "expert ran, so the routed units can no longer be computed from it: profile site='residual'.")
            call.shared = args[0].detach()
            self._visit(slot, call)

        return hook


def _refuse_shared_layers(sites: Sequence[Site]) -> None:
    """`edit` and ``trace[layer]`` name a site by its layer: sites sharing one (``find_sites(model, "mlp") +
    find_sites(model, "residual")``, or one site listed twice) would send an edit to the last of them only and read
    the first, so the edited tensor and the one kept were not the same, with no error."""
    seen: dict[int, str] = {}
    for site in sites:
        if site.layer in seen:
            raise ConfigurationError(
                f"Sites {seen[site.layer]!r} and {site.name!r} are both layer {site.layer}: `edit` and `t[layer]` "
                "name a site by its layer, so they would reach only one of them. Trace each kind of site (mlp, "
                "residual) in its own trace(...), and list a site once.")
        seen[site.layer] = site.name


def _in_backward() -> bool:
    """Whether autograd is running a backward pass (gradient checkpointing then calls blocks again)."""
    current = getattr(torch._C, "_current_graph_task_id", None)
    return current is not None and current() != -1


def _pass_modules(model: nn.Module | None) -> list[nn.Module]:
    """The modules whose calls begin a forward pass of `model`: itself, the model a PEFT wrapper holds (its
    ``generate()`` calls that one, never the wrapper's forward) and that model's transformers body (``base_model``,
    which a caller may run alone)."""
    found: list[nn.Module] = []
    inner = model.get_base_model() if callable(getattr(model, "get_base_model", None)) else model
    for module in (model, inner, getattr(inner, "base_model", None)):
        if isinstance(module, nn.Module) and all(module is not m for m in found):
            found.append(module)
    return found


@contextlib.contextmanager
def trace(model: nn.Module, sites: Sequence[Site], *, read: Callable[[int, Any], None] | None = None,
          edit: Mapping[int, Edit] | None = None, retain: bool = False, once: bool = True,
          prepend: bool = False) -> Iterator[Trace]:
    """Hook `sites` of `model` for the duration of a ``with`` block: read, keep or edit their activations.

    `model` is checked to hold every site's module (a site found on another model, e.g. a copy, would hook modules
    that never run), and its forward passes are told apart: a trace that only edits needs no ``t.reset()`` between
    batches (or inside ``generate()``), one that reads or keeps does.

    Args:
        model (`nn.Module`): the model whose sites are hooked.
        sites (`Sequence[Site]`): where to hook, e.g. ``find_sites(model, "mlp")``.
        read (`callable(slot, tensor)`, *optional*): as :class:`Trace`.
        edit (`dict[int, Edit]`, *optional*): per layer, a :class:`Fill` or a function returning the new
            activations (same shape); as :class:`Trace`.
        retain (`bool`, *optional*, defaults to `False`): keep each site's last activations, read with ``t[layer]``.
        once (`bool`, *optional*, defaults to `True`): refuse a site that fires twice in one forward pass.
        prepend (`bool`, *optional*, defaults to `False`): register before the module's other hooks.

    Yields:
        :class:`Trace`: the active trace; its hooks are removed on leaving the block.

    Raises:
        ModelError: a site whose module is not one of `model`'s; and as :class:`Trace` raises.
        ConfigurationError: as :class:`Trace` raises.

    Example:
        ```python
        >>> from hf_txray.hooks import Fill, trace
        >>> from hf_txray.sites import find_sites
        >>> sites = find_sites(model, "mlp")          # one site per block: the MLP neurons
        >>> with trace(model, sites, edit={3: Fill([17, 42])}, retain=True) as t:
        ...     logits = model(**batch).logits          # neurons 17 and 42 of layer 3 output 0
        >>> t[3].shape                                 # layer 3's (edited) activations: (batch, seq, 1536)
        ```
    """
    check_sites_in(model, sites)
    with Trace(sites, read=read, edit=edit, retain=retain, once=once, prepend=prepend, model=model) as t:
        yield t


@contextlib.contextmanager
def call_order(modules: Sequence[nn.Module]) -> Iterator[dict[int, int]]:
    """Within the ``with`` block, record the order in which `modules` are first called: a dict ``id(module) ->
    position`` (modules not called are absent). Read-only (inputs are left as they are); the hooks are removed on
    leaving. Output effects read which norm a body runs after its last block, and in which order an LM head runs
    its layers, from one forward pass inside it (registration order is not the order of the calls)."""
    order: dict[int, int] = {}

    def seen(module: nn.Module, args: tuple) -> None:
        order.setdefault(id(module), len(order))

    handles = [module.register_forward_pre_hook(seen) for module in modules]
    try:
        yield order
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def module_tensors(inputs: Sequence[nn.Module] = (), outputs: Sequence[nn.Module] = ()
                   ) -> Iterator[dict[str, dict[int, list[torch.Tensor]]]]:
    """Within the ``with`` block, keep a detached copy of the first tensor each of `inputs` receives and each of
    `outputs` returns, call by call: ``{"inputs": {id(module): [tensor, ...]}, "outputs": {...}}``. Read-only; the
    hooks are removed on leaving. Output effects tell which norm reads an MLP's output by comparing the two (data
    flow, not module names), in one small forward pass inside it."""
    seen: dict[str, dict[int, list[torch.Tensor]]] = {"inputs": {}, "outputs": {}}

    def keep(kind: str, value: Any, module: nn.Module) -> None:
        first = value[0] if isinstance(value, (tuple, list)) and value else value
        if isinstance(first, torch.Tensor):
            seen[kind].setdefault(id(module), []).append(first.detach().clone())

    handles = [m.register_forward_pre_hook(lambda module, args: keep("inputs", args, module)) for m in inputs]
    handles += [m.register_forward_hook(lambda module, args, output: keep("outputs", output, module))
                for m in outputs]
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


HookSpec = tuple[str, nn.Module, Callable]  # ("pre" | "pre_kwargs" | "post", module, hook function)


@contextlib.contextmanager
def module_hooks(hooks: Sequence[HookSpec]) -> Iterator[None]:
    """Within the ``with`` block, the given hooks on modules that are not neuron sites, registered in order and
    removed on leaving (also when the block raised): ``("pre", module, fn(module, args))``, ``("pre_kwargs", module,
    fn(module, args, kwargs))`` or ``("post", module, fn(module, args, output))``, each as torch calls it (a hook
    may return a replacement). Output effects measure the scalars a model applies (a residual multiplier, a logit
    scale) by perturbing a probe forward pass inside it; everything that edits activations at neuron sites uses
    :class:`Trace`."""
    handles: list[torch.utils.hooks.RemovableHandle] = []
    try:
        for kind, module, fn in hooks:
            if kind == "post":
                handles.append(module.register_forward_hook(fn))
            elif kind in ("pre", "pre_kwargs"):
                handles.append(module.register_forward_pre_hook(fn, with_kwargs=kind == "pre_kwargs"))
            else:
                raise ValueError(f"Unknown hook kind {kind!r}: 'pre', 'pre_kwargs' or 'post'.")
        yield
    finally:
        for handle in handles:
            handle.remove()


def check_sites_in(model: nn.Module, sites: Sequence[Site]) -> None:
    """Raise :class:`ModelError` when a site's module is not a submodule of `model`."""
    modules = {id(m) for m in model.modules()}
    foreign = [site.name for site in sites if id(site.module) not in modules]
    if foreign:
        raise ModelError(f"Site {foreign[0]!r} is not a module of this {type(model).__name__}: find the sites on the "
                         "model you run (find_sites(model, ...)).")


def _is_distributed_hook(hook: Callable) -> bool:
    """Whether a forward pre-hook is torch.distributed's own (FSDP2's parameter gathering, DDP's mixed precision
    copies): removing or moving it, as a user's own hook may be, would break the model."""
    function = getattr(hook, "func", hook)  # a functools.partial, as FSDP1's composable hooks are
    function = getattr(function, "__func__", function)  # a bound method, as FSDP2's FSDPState._pre_forward is
    return (getattr(function, "__module__", None) or "").startswith("torch.distributed")


def refuse_skipped_pre_hooks(outer: nn.Module, inner: nn.Module, runs: str) -> None:
    """Refuse a model whose forward pre-hooks would be skipped: hf_txray calls `inner` (a model inside its
    ``torch.compile`` / data-parallel wrapper, a task model's body without its head), so the pre-hooks of `outer` and
    of every module between it and `inner` never run, and whatever they do to the inputs (a user's hook that edits the
    ``input_ids`` or the embeddings, X-LoRA's scalings) would silently be left out of every activation read. hf_txray's
    own hooks (a :class:`Trace` telling passes apart, as under :func:`~hf_txray.probing.ablate`) are not counted;
    forward hooks (after the call) cannot change what `inner` computes and pass.

    Args:
        outer (`nn.Module`): the model as the user passed it.
        inner (`nn.Module`): the part of it that hf_txray runs.
        runs (`str`): what runs, for the message (e.g. ``"the model inside its DataParallel wrapper"``).

    Raises:
        ModelError: a module holding `inner` (`outer` included) has a forward pre-hook, naming it and the fix.
    """
    if inner is outer:
        return
    path = next((name for name, module in outer.named_modules() if module is inner), None)
    if path is None:
        return
    parts = path.split(".")
    holders = [".".join(parts[:i]) for i in range(len(parts))]  # "" (outer itself), then each parent of inner
    hooked = [name for name in holders
              if any(not isinstance(getattr(hook, "__self__", None), Trace)
                     for hook in outer.get_submodule(name)._forward_pre_hooks.values())]
    if hooked:
        where = ", ".join(repr(name) if name else f"{type(outer).__name__} itself" for name in hooked)
        if any(_is_distributed_hook(hook) for name in hooked
               for hook in outer.get_submodule(name)._forward_pre_hooks.values()):
            raise ModelError(
                f"{type(outer).__name__} is sharded by torch.distributed (FSDP2's fully_shard, or DDP's mixed "
                f"precision): its forward pre-hooks on {where} gather or cast the parameters, and hf_txray's forward "
                f"passes run {runs} ({path!r}) without them (the body alone reads sharded parameters). Profile an "
                "unsharded copy instead: a saved checkpoint (hf_txray.analyze(checkpoint_dir)), or the model before "
                "fully_shard.")
        raise ModelError(
            f"{type(outer).__name__} has forward pre-hooks on {where}, which hf_txray's forward passes skip: they run "
            f"{runs} ({path!r}), so what the hooks do to its inputs would be left out of every activation read, "
            f"without an error. Register them on {path!r} (or on modules inside it) instead, or remove them while "
            "hf_txray runs.")


__all__ = ["Trace", "trace", "Fill", "ExpertsCall", "Edit", "check_sites_in", "call_order", "module_hooks",
           "refuse_skipped_pre_hooks"]
