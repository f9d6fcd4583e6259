"""Operations: maintenance tickets and the periodic reports."""
