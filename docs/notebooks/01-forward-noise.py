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
# # 01 · Forward noising (notebook)
#
# Placeholder companion notebook; the lesson's notebook replaces it.
# The formula of the chapter, inline $\bar\alpha_0 = 1$ and displayed:
#
# $$
# x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon
# $$

# %%
import math; math.sqrt(2)
