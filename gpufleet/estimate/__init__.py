"""Memory estimates: how much RAM and VRAM a GGUF model needs for a placement, as llama.cpp allocates it."""
