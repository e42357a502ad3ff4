"""bf16 weights for the model's passes, fp32 master weights for the optimizer.

On a CPU with bf16 matrix units, a model whose weights are bf16 trains faster than fp32 weights under bf16
autocast, which re-casts every weight on every call (``python -m benchmarks.train_speed`` measures it). But AdamW's
updates (learning rate x about 1) are far below bf16's resolution for most weights, so updating bf16
weights in place would lose them: the optimizer keeps fp32 copies, steps those, and copies them back.

Example:
    >>> master = MasterWeights(model)           # model is now bf16
    >>> loss.backward(); master.grads_to_master(); optimizer.step(); master.master_to_model()
"""

from __future__ import annotations


class MasterWeights:
    """fp32 copies of a model's parameters (``params``, in ``model.parameters()`` order); the model is
    cast to bf16."""

    def __init__(self, model):
        import torch

        self._model_params = list(model.parameters())
        self.params = [torch.nn.Parameter(p.detach().float().clone()) for p in self._model_params]
        model.to(torch.bfloat16)

    def grads_to_master(self) -> None:
        """Move the model's gradients onto the fp32 copies (as fp32) and clear the model's."""
        for master, p in zip(self.params, self._model_params):
            master.grad = None if p.grad is None else p.grad.float()
            p.grad = None

    def master_to_model(self) -> None:
        """Copy the fp32 weights into the bf16 model (rounded)."""
        import torch

        with torch.no_grad():
            for master, p in zip(self.params, self._model_params):
                p.copy_(master)

    def load(self, tensors) -> None:
        """Restore fp32 copies saved from :attr:`params` (a checkpoint) and copy them into the model."""
        import torch

        with torch.no_grad():
            for master, saved in zip(self.params, tensors):
                master.copy_(saved)
        self.master_to_model()

    def restore_fp32(self, model) -> None:
        """Make ``model`` fp32 again, holding the exact fp32 weights (before saving it)."""
        import torch

        model.float()
        with torch.no_grad():
            for master, p in zip(self.params, model.parameters()):
                p.copy_(master)
