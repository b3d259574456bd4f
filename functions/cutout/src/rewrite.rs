//! Load-time graph rewrite: linear `Resize` → two matrix products.
//!
//! U²-Net upsamples its side outputs and decoder stages with 38 bilinear `Resize` ops. tract
//! runs `Resize` as a scalar, single-threaded loop — about a fifth of u2netp's time on one
//! thread, and more of it with several threads since the convolutions do scale.
//!
//! A linear resize along one axis is a linear map: `out = M · in` with `M[o, i]` the
//! interpolation weight of input sample `i` for output sample `o` (two non-zero taps per
//! row). With a fixed input shape every `M` is a constant, so each 4-D resize
//! `[N, C, H, W] → [N, C, H', W']` becomes `Mh · X` over H then `· Mwᵀ` over W: two
//! `EinSum`s that tract lowers onto its optimised, multithreaded matmul kernels.
//!
//! The weights come from tract's own `Resize::plan_axis`, so the result is the same
//! interpolation up to float summation order (masks are unchanged; the parity test
//! checks that against rembg). Resizes that do not fit (not linear, rank ≠ 4, N or C
//! changing, symbolic shapes) are left alone.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::TypedModelPatch;
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::nn::resize::{Interpolator, Resize};

/// Rewrites every eligible linear `Resize` of `model`; returns how many were rewritten.
pub fn linear_resize_as_matmul(model: &mut TypedModel) -> TractResult<usize> {
    let candidates: Vec<usize> = model
        .nodes()
        .iter()
        .filter(|n| n.op_as::<Resize>().is_some_and(|r| matches!(r.interpolator, Interpolator::Linear)))
        .map(|n| n.id)
        .collect();
    let mut rewritten = 0;
    for id in candidates {
        if let Some(patch) = patch_for(model, id)? {
            patch.apply(model)?;
            rewritten += 1;
        }
    }
    Ok(rewritten)
}

fn patch_for(model: &TypedModel, id: usize) -> TractResult<Option<TypedModelPatch>> {
    let node = model.node(id);
    let Some(op) = node.op_as::<Resize>() else {
        return Ok(None);
    };
    let input = model.outlet_fact(node.inputs[0])?;
    let output = model.outlet_fact(OutletId::new(id, 0))?;
    let (Some(ishape), Some(oshape)) = (input.shape.as_concrete(), output.shape.as_concrete()) else {
        return Ok(None);
    };
    if input.datum_type != f32::datum_type() || ishape.len() != 4 || oshape.len() != 4 || ishape[..2] != oshape[..2] {
        return Ok(None);
    }
    // The same scales tract's eval would use: the constant `scales` input when it has one
    // entry per axis, otherwise output / input lengths.
    let scales: Vec<f32> = match op
        .optional_scales_input
        .and_then(|ix| node.inputs.get(ix))
        .map(|o| model.outlet_fact(*o))
        .transpose()?
        .and_then(|f| f.konst.clone())
    {
        Some(t) if t.len() == 4 => t.cast_to::<f32>()?.try_as_plain_ram()?.as_slice::<f32>()?.to_vec(),
        _ => oshape.iter().zip(ishape).map(|(o, i)| *o as f32 / *i as f32).collect(),
    };
    if scales[0] != 1.0 || scales[1] != 1.0 {
        return Ok(None);
    }

    let mut patch = TypedModelPatch::default();
    let mut wire = patch.tap_model(model, node.inputs[0])?;
    for (axis, expr) in [(2usize, "ah,nchw->ncaw"), (3, "bw,nchw->nchb")] {
        let (len_in, len_out) = (ishape[axis], oshape[axis]);
        if len_in == len_out && scales[axis] == 1.0 {
            continue;
        }
        let plan = op.plan_axis(scales[axis], len_in, len_out);
        let mut m = vec![0f32; len_out * len_in];
        for o in 0..len_out {
            if plan.extrapolated[o] {
                continue; // tract extrapolates with 0.0: an all-zero row
            }
            for k in 0..plan.window {
                let tap = o * plan.window + k;
                m[o * len_in + plan.indices[tap]] += plan.weights[tap];
            }
        }
        let m = tract_ndarray::Array2::from_shape_vec((len_out, len_in), m)?.into_tensor();
        let k = patch.add_const(format!("{}.interp_{axis}", node.name), m)?;
        wire = patch.wire_node(
            format!("{}.interp_mm_{axis}", node.name),
            EinSum::new(expr.parse()?, f32::datum_type()),
            &[k, wire],
        )?[0];
    }
    patch.shunt_outside(model, OutletId::new(id, 0), wire)?;
    Ok(Some(patch))
}
