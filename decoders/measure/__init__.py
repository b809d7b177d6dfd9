"""Measurement prediction: what an image (and its VARS) will measure before it runs, and the
registers that follows (TPM PCRs, the TDX MRTD and RTMR0, the SEV-SNP launch digest)."""
