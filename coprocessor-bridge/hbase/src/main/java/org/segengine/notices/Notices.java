package org.segengine.notices;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import seg.Segmentation.ChangeNotice;
import seg.Segmentation.NoticeKind;

/**
 * Builds ChangeNotices the way the C++ bridge does (seg::bridge::Coalesce in
 * coprocessor-bridge/internal/bridge.cc): one notice per distinct row in
 * first-seen order; newest_event_time_ms = max cell timestamp, event_count =
 * number of cells (saturating at 2^32-1), acked_at_ms = when the store
 * acknowledged the write (here: the newest WAL key write time of the row's
 * edits), kind = NOTICE_WRITE. For the same input the serialized bytes equal
 * the C++ bridge's (proto3 writes fields in number order and omits
 * defaults, in both languages).
 */
public final class Notices {
  private Notices() {}

  /** Accumulates the cells of one shipment, per row. Not thread-safe. */
  public static final class Builder {
    private static final class Row {
      final byte[] key;
      long newestMs = Long.MIN_VALUE;
      long ackedAtMs = Long.MIN_VALUE;
      long count;

      Row(byte[] key) {
        this.key = key;
      }
    }

    private final Map<String, Row> rows = new LinkedHashMap<>();

    /** One cell of `row` with timestamp `cellTsMs`, written at `writeTimeMs`. */
    public void add(byte[] row, long cellTsMs, long writeTimeMs) {
      if (row.length == 0) return;
      // ISO-8859-1 maps bytes 1:1, so binary row keys stay distinct.
      Row r = rows.computeIfAbsent(new String(row, java.nio.charset.StandardCharsets.ISO_8859_1),
          k -> new Row(Arrays.copyOf(row, row.length)));
      r.newestMs = Math.max(r.newestMs, cellTsMs);
      r.ackedAtMs = Math.max(r.ackedAtMs, writeTimeMs);
      r.count++;
    }

    public boolean isEmpty() {
      return rows.isEmpty();
    }

    /** (row key, notice) pairs in first-seen order. */
    public List<Map.Entry<byte[], ChangeNotice>> build() {
      List<Map.Entry<byte[], ChangeNotice>> out = new ArrayList<>(rows.size());
      for (Row r : rows.values()) {
        out.add(Map.entry(r.key, notice(r.key, r.newestMs, r.ackedAtMs, r.count)));
      }
      return out;
    }
  }

  /** The notice for one row (user id = the row key's bytes). */
  public static ChangeNotice notice(byte[] row, long newestMs, long ackedAtMs, long cellCount) {
    long count = Math.min(Math.max(cellCount, 0), 0xFFFFFFFFL);
    return ChangeNotice.newBuilder()
        // user_id is a proto3 string: the row key is the user id's UTF-8.
        .setUserIdBytes(com.google.protobuf.ByteString.copyFrom(row))
        .setNewestEventTimeMs(newestMs)
        .setAckedAtMs(ackedAtMs)
        .setEventCount((int) count)
        .setKind(NoticeKind.NOTICE_WRITE)
        .build();
  }
}
