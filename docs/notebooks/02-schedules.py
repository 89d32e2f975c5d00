# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Noise schedules (notebook)
#
# Placeholder companion notebook; the lesson's notebook replaces it.
# The formula of the chapter, inline $\bar\alpha_0 = 1$ and displayed:
#
# $$
# \mathrm{SNR}(t) = \frac{\bar\alpha_t}{1-\bar\alpha_t}
# $$

# %%
import math; math.sqrt(2)
