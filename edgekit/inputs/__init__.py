"""Inputs the user describes or brings: ``--input`` specs, ``--data-loader`` functions, saved .npz feeds."""

from edgekit.inputs.specs import InputSpec, parse_input_specs

__all__ = ["InputSpec", "parse_input_specs"]
